"""The acceptance set: a small labelled sample of the validation split that travels in the
bundle, with each model's outputs on it as recorded at build time.

The box scores its own models on it (``edgeft validate``) and compares them with those recorded
outputs, so an int8 model is proven on the hardware that runs it without shipping the dataset.
Images are stored decoded, resized as the preprocessing's first step resizes them, and
re-encoded losslessly as PNG: preprocessing a stored image gives exactly the tensor the original
gave. Outputs are ``.npy`` files, read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeft.bundle.manifest import Manifest, ModelEntry, confined_path
from edgeft.errors import BundleError

ACCEPTANCE_DIR = "acceptance"
ACCEPTANCE_INDEX = f"{ACCEPTANCE_DIR}/set.json"
DEFAULT_SIZE = 256


@dataclass(frozen=True)
class AcceptanceSet:
    """Items (bundle-relative image files, or texts), their labels, and where they came from."""

    kind: str
    items: list[str]
    labels: list[str]
    source: dict[str, Any]

    def label_indices(self, classes: list[str]) -> np.ndarray:
        unknown = sorted(set(self.labels) - set(classes))
        if unknown:
            raise BundleError(f"acceptance set labels {unknown} are not the bundle's labels")
        index = {name: i for i, name in enumerate(classes)}
        return np.asarray([index[label] for label in self.labels], dtype=np.int64)

    def inputs(self, root: Path) -> list[Any]:
        """What the bundle's encoder takes: image paths inside ``root``, or the texts."""
        return [root / item for item in self.items] if self.kind == "image" else list(self.items)


def read_acceptance_set(index: Path) -> AcceptanceSet:
    """Parse an acceptance set's index file; a malformed one is refused with the reason."""
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
        accepted = AcceptanceSet(
            kind=str(data["kind"]),
            items=[str(i) for i in data["items"]],
            labels=[str(label) for label in data["labels"]],
            source=dict(data.get("source") or {}),
        )
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BundleError(f"acceptance set {index} is malformed ({exc})") from exc
    if accepted.kind not in ("image", "text") or len(accepted.items) != len(accepted.labels):
        raise BundleError(f"acceptance set {index} is malformed (kind, or items vs labels)")
    return accepted


def load_acceptance_set(root: Path, manifest: Manifest) -> AcceptanceSet | None:
    """The bundle's acceptance set; its images must be files the manifest lists (and so hashed)."""
    if manifest.acceptance is None:
        return None
    accepted = read_acceptance_set(root / manifest.acceptance)
    if accepted.kind == "image":
        for item in accepted.items:
            if confined_path(item, "acceptance item") not in manifest.files:
                raise BundleError(f"{root}: acceptance image {item!r} is not a listed file")
    return accepted


def outputs_file(entry_path: str) -> str:
    """Where a model's build-time acceptance outputs live: one ``.npy`` per model file."""
    return f"{ACCEPTANCE_DIR}/outputs/{entry_path.replace('/', '--')}.npy"


def save_outputs(staging: Path, entry_path: str, logits: np.ndarray) -> str:
    rel = outputs_file(entry_path)
    (staging / rel).parent.mkdir(parents=True, exist_ok=True)
    np.save(staging / rel, np.asarray(logits, dtype=np.float32), allow_pickle=False)
    return rel


def load_outputs(root: Path, entry: ModelEntry, items: int) -> np.ndarray | None:
    if entry.reference_outputs is None:
        return None
    try:
        logits = np.load(root / entry.reference_outputs, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BundleError(
            f"{root}: {entry.reference_outputs} is not a numpy array ({exc})"
        ) from exc
    if logits.ndim != 2 or len(logits) != items:
        raise BundleError(
            f"{root}: {entry.reference_outputs} holds {logits.shape}, not one row per "
            f"acceptance item ({items})"
        )
    return logits

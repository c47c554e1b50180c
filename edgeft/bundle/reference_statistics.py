"""The reference profile a bundle carries: how the model behaved on data it was not trained on.

Written at export from the validation split (labelled, never trained on, never the test split):
per item the calibrated class probabilities, the label, the input statistics and the embedding
sketch, plus the temperature that calibrates the model. The monitor draws windows from these
items to learn each figure's normal band, so the profile keeps items, not only summaries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeft.bundle.store import Bundle
from edgeft.errors import BundleError, EdgeftError

PROFILE_FILE = "reference/profile.json"


@dataclass
class ReferenceStatistics:
    temperature: float
    labels: list[str]
    truth: np.ndarray  # (N,) class index
    probabilities: np.ndarray  # (N, classes), calibrated with ``temperature``
    statistics: dict[str, np.ndarray]  # name -> (N,), NaN where unknown
    embedding: np.ndarray | None  # (N, d) sketch, None for a graph without one
    source: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.truth)

    def to_dict(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "labels": self.labels,
            "truth": self.truth.tolist(),
            "probabilities": np.round(self.probabilities, 6).tolist(),
            "statistics": {
                name: [None if np.isnan(v) else round(float(v), 6) for v in values]
                for name, values in self.statistics.items()
            },
            "embedding": None if self.embedding is None else np.round(self.embedding, 5).tolist(),
            "source": self.source,
            "summary": self.summary,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ReferenceStatistics:
        """Parse and check shapes; a malformed profile is a ``BundleError`` saying what."""
        try:
            labels = [str(label) for label in data["labels"]]
            truth = np.asarray(data["truth"], dtype=np.int64)
            probabilities = np.asarray(data["probabilities"], dtype=np.float64)
            statistics = {
                str(name): np.asarray(
                    [np.nan if v is None else v for v in values], dtype=np.float64
                )
                for name, values in data["statistics"].items()
            }
            embedding = data.get("embedding")
            sketch = None if embedding is None else np.asarray(embedding, dtype=np.float64)
            temperature = float(data["temperature"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"reference profile is malformed: {exc!r}") from exc
        n = len(truth)
        if (
            n == 0
            or probabilities.shape != (n, len(labels))
            or any(v.shape != (n,) for v in statistics.values())
            or (sketch is not None and (sketch.ndim != 2 or len(sketch) != n))
            or not 0 < temperature < 1e3
        ):
            raise BundleError("reference profile arrays do not agree in length or shape")
        return cls(
            temperature,
            labels,
            truth,
            probabilities,
            statistics,
            sketch,
            dict(data.get("source") or {}),
            dict(data.get("summary") or {}),
        )

    def write(self, root: Path) -> str:
        path = root / PROFILE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict()) + "\n", encoding="utf-8")
        return PROFILE_FILE

    @classmethod
    def of(cls, bundle: Bundle) -> ReferenceStatistics:
        """The bundle's profile (its hash was checked when the bundle loaded)."""
        rel = bundle.manifest.reference
        if rel is None:
            raise EdgeftError(
                f"{bundle.root} has no reference profile (exported without a validation split, "
                "or by an older edgeft): re-export it from its run folder"
            )
        try:
            data = json.loads(bundle.path_of(rel).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BundleError(f"{bundle.root}: reference profile unreadable ({exc})") from exc
        return cls.from_dict(data)

"""A labelled classification dataset already split into train / val / test."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from edgeft.bundle import sha256_file
from edgeft.data.splits import SPLITS
from edgeft.errors import DatasetError

Kind = Literal["image", "text"]


@dataclass(frozen=True)
class Example:
    """An image path or a text, and its class index."""

    item: str
    label: int


def content_key(item: str, kind: Kind) -> str:
    """What makes two items the same: an image's bytes (not its path), a text's characters."""
    return sha256_file(Path(item)) if kind == "image" else item


def examples_fingerprint(examples: Iterable[Example], classes: Sequence[str], kind: Kind) -> str:
    """sha256 over (item, label) pairs; images count by content, not by path."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(content_key(example.item, kind).encode())
        digest.update(f"\t{classes[example.label]}\n".encode())
    return digest.hexdigest()


@dataclass
class ClassificationDataset:
    """Classes, the three splits, and how the split was made (recorded for reproducibility)."""

    kind: Kind
    classes: list[str]
    splits: dict[str, list[Example]]
    source: str
    split_recipe: dict[str, Any] = field(default_factory=dict)
    root: Path | None = None

    def __post_init__(self) -> None:
        if set(self.splits) != set(SPLITS):
            raise DatasetError(
                f"{self.source}: expected splits {SPLITS}, got {sorted(self.splits)}"
            )
        if len(self.classes) < 2:
            found = self.classes[0] if self.classes else "none"
            raise DatasetError(f"{self.source}: needs at least 2 classes, found {found}")
        if not self.splits["train"]:
            raise DatasetError(f"{self.source}: the train split is empty")

    def counts(self) -> dict[str, Counter[str]]:
        """Per split, how many examples of each class."""
        return {s: Counter(self.classes[e.label] for e in self.splits[s]) for s in SPLITS}

    def fingerprint(self, split: str) -> str:
        """The split's ``examples_fingerprint``: what a run records to reload it unchanged."""
        return examples_fingerprint(self.splits[split], self.classes, self.kind)

    @cached_property
    def fingerprints(self) -> dict[str, str]:
        return {split: self.fingerprint(split) for split in SPLITS}

    def describe(self) -> dict[str, Any]:
        """What a run or a bundle records about the data it saw."""
        return {
            "source": self.source,
            "kind": self.kind,
            "classes": self.classes,
            "split_recipe": self.split_recipe,
            "sizes": {s: len(self.splits[s]) for s in SPLITS},
            "fingerprints": self.fingerprints,
        }

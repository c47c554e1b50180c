"""Checks a user should see before training: balance, leaks between splits, unreadable files."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import track

from edgeft.bundle import sha256_file
from edgeft.data.dataset import ClassificationDataset
from edgeft.data.splits import SPLITS
from edgeft.errors import EdgeftError
from edgeft.runtime.images import decode_image

IMBALANCE_RATIO = 3.0


@dataclass
class DatasetReport:
    """Counts per split and class, plus the problems found; ``warnings`` are one line each."""

    dataset: ClassificationDataset
    counts: dict[str, dict[str, int]]
    unreadable: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str, str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """The dataset's description with the counts and problems (``data inspect --json``)."""
        return self.dataset.describe() | {
            "counts": self.counts,
            "warnings": self.warnings,
            "unreadable": self.unreadable,
        }


def inspect_dataset(dataset: ClassificationDataset, check_files: bool = True) -> DatasetReport:
    """Count, then (with ``check_files``) decode every image and hash every item across splits."""
    counts = {s: dict(c) for s, c in dataset.counts().items()}
    report = DatasetReport(dataset, counts)
    train = counts["train"]
    smallest, largest = min(train.get(c, 0) for c in dataset.classes), max(train.values())
    if smallest == 0 or largest / smallest > IMBALANCE_RATIO:
        report.warnings.append(
            f"imbalanced train split: largest class {largest}, smallest {smallest} "
            "(fine-tuning uses class weights; report macro-F1, not accuracy alone)"
        )
    for split in ("val", "test"):
        absent = [c for c in dataset.classes if counts[split].get(c, 0) == 0]
        if absent:
            report.warnings.append(f"{split} split has no examples of {absent}")
    if check_files:
        _check_items(dataset, report)
    return report


def _check_items(dataset: ClassificationDataset, report: DatasetReport) -> None:
    seen: dict[str, tuple[str, str]] = {}
    jobs = [(s, e) for s in SPLITS for e in dataset.splits[s]]
    for split, example in track(jobs, description="Checking items", transient=True):
        if dataset.kind == "image":
            try:
                decode_image(example.item)
            except EdgeftError:
                report.unreadable.append(example.item)
                continue
            key = sha256_file(Path(example.item))
        else:
            key = hashlib.sha256(" ".join(example.item.lower().split()).encode()).hexdigest()
        if key in seen and seen[key][0] != split:
            report.duplicates.append((seen[key][0], seen[key][1], split, example.item))
        seen.setdefault(key, (split, example.item))
    if report.unreadable:
        report.warnings.append(
            f"{len(report.unreadable)} unreadable image(s), e.g. {report.unreadable[0]}"
        )
    if report.duplicates:
        first = report.duplicates[0]
        report.warnings.append(
            f"{len(report.duplicates)} item(s) appear in two splits (test results leak), "
            f"e.g. {first[0]}:{first[1]} = {first[2]}:{first[3]}"
        )

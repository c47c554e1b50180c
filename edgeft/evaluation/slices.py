"""Accuracy on slices of a split, from the dataset folder's ``metadata.csv``.

A headline accuracy hides where a model fails: on ELPV the cells the experts were unsure of
(defect probability 1/3 or 2/3) score 20 points below the certain ones, and mono and poly modules
differ too. An image folder may carry ``metadata.csv`` with a ``file`` column (paths relative to
the folder) and any others; every column with at most ``MAX_VALUES`` distinct values on the split
becomes slices, one per value.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from edgeft.data import ClassificationDataset

METADATA_FILE = "metadata.csv"
MAX_VALUES = 12
_NOT_SLICES = {"file", "split", "label"}


def dataset_slices(dataset: ClassificationDataset, split: str) -> dict[str, np.ndarray]:
    """``"column=value"`` -> a mask over the split's examples; empty without metadata."""
    if dataset.root is None:
        return {}
    return folder_slices(dataset.root, [e.item for e in dataset.splits[split]])


def folder_slices(root: Path, items: Sequence[str | Path]) -> dict[str, np.ndarray]:
    """``"column=value"`` -> a mask over ``items`` (files under ``root``), from the folder's
    ``metadata.csv``; empty without one."""
    cells = metadata_rows(root, items)
    columns = sorted({key for row in cells for key in row} - _NOT_SLICES)
    slices = {}
    for column in columns:
        values = [row.get(column) for row in cells]
        distinct = sorted({v for v in values if v not in (None, "")}, key=_order)
        if not 2 <= len(distinct) <= MAX_VALUES:
            continue
        for value in distinct:
            slices[f"{column}={_shown(value)}"] = np.array([v == value for v in values])
    return slices


def metadata_rows(root: Path, items: Sequence[str | Path]) -> list[dict[str, str]]:
    """Each item's row of ``root``'s ``metadata.csv`` (``{}`` where it has none)."""
    if not (root / METADATA_FILE).is_file():
        return [{} for _ in items]
    root = root.resolve()
    with open(root / METADATA_FILE, newline="", encoding="utf-8") as handle:
        rows = {row.get("file", ""): row for row in csv.DictReader(handle)}
    return [rows.get(_relative(str(item), root), {}) for item in items]


def slice_accuracy(
    logits: np.ndarray, labels: np.ndarray, slices: dict[str, np.ndarray]
) -> dict[str, dict[str, Any]]:
    hits = logits.argmax(-1) == labels
    return {
        name: {"examples": int(mask.sum()), "accuracy": float(hits[mask].mean())}
        for name, mask in slices.items()
        if mask.any()
    }


def slice_table(title: str, models: Sequence[tuple[str, dict[str, Any]]]) -> Table | None:
    """Slices as rows, models as columns (label, scores with ``slices``); None without slices."""
    names = list(models[0][1].get("slices", {})) if models else []
    if not names:
        return None
    table = Table(title=title)
    table.add_column("slice")
    table.add_column("cells", justify="right")
    for label, _ in models:
        table.add_column(label, justify="right")
    for name in names:
        first = models[0][1]["slices"][name]
        accuracies = [f"{scores['slices'][name]['accuracy']:.4f}" for _, scores in models]
        table.add_row(name, str(first["examples"]), *accuracies)
    return table


def _relative(item: str, root: Path) -> str:
    try:
        return Path(item).resolve().relative_to(root).as_posix()
    except ValueError:
        return item


def _order(value: str) -> tuple[int, float, str]:
    try:
        return 0, float(value), value
    except ValueError:
        return 1, 0.0, value


def _shown(value: str) -> str:
    try:
        return f"{float(value):.3g}"
    except ValueError:
        return value

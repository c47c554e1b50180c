"""Text datasets: CSV or JSONL with ``text`` and ``label``; one file (split here) or one per split."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from edgeft.bundle.labels import check_class_names
from edgeft.data.dataset import ClassificationDataset, Example
from edgeft.data.splits import DEFAULT_FRACTIONS, SPLITS, stratified_split
from edgeft.errors import DatasetError

TEXT_SUFFIXES = (".csv", ".jsonl")


def is_text_source(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() in TEXT_SUFFIXES
    return path.is_dir() and any((path / f"train{s}").is_file() for s in TEXT_SUFFIXES)


def load_text_table(
    path: str | Path, seed: int = 0, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> ClassificationDataset:
    path = Path(path)
    if path.is_file():
        rows = read_rows(path)
        classes = sorted({label for _, label in rows})
        _check_classes(classes, path)
        labels = [classes.index(label) for _, label in rows]
        parts = stratified_split(labels, fractions, seed, names=classes)
        splits = {
            s: [Example(rows[i][0], labels[i]) for i in idx]
            for s, idx in zip(SPLITS, parts, strict=True)
        }
        recipe = {"method": "stratified", "fractions": list(fractions), "seed": seed}
        return ClassificationDataset("text", classes, splits, str(path), recipe)
    files = {s: _split_file(path, s) for s in SPLITS}
    rows_by_split = {s: read_rows(f) for s, f in files.items()}
    classes = sorted({label for _, label in rows_by_split["train"]})
    _check_classes(classes, files["train"])
    for split in ("val", "test"):
        unknown = sorted({label for _, label in rows_by_split[split]} - set(classes))
        if unknown:
            raise DatasetError(f"{files[split]}: labels {unknown} do not appear in train")
    splits = {
        s: [Example(text, classes.index(label)) for text, label in rows]
        for s, rows in rows_by_split.items()
    }
    return ClassificationDataset("text", classes, splits, str(path), {"method": "given"})


def _check_classes(classes: list[str], source: Path) -> None:
    """At least two labels, each usable as a class folder (``check_class_names``)."""
    if len(classes) < 2:
        raise DatasetError(f"{source}: needs at least 2 labels, found {classes or 'none'}")
    check_class_names(classes, source)


def _split_file(folder: Path, split: str) -> Path:
    for suffix in TEXT_SUFFIXES:
        if (candidate := folder / f"{split}{suffix}").is_file():
            return candidate
    raise DatasetError(f"{folder}: no {split}.csv or {split}.jsonl")


def read_rows(path: Path) -> list[tuple[str, str]]:
    """(text, label) rows; a missing column or an empty text names the line."""
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc})") from exc
    records: list[tuple[int, dict[str, object]]]
    if path.suffix.lower() == ".jsonl":
        records = []
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise DatasetError(f"{path}:{number}: expected a JSON object")
            records.append((number, record))
    else:
        reader = csv.DictReader(io.StringIO(raw))
        records = [(number, row) for number, row in enumerate(reader, start=2)]
    rows = []
    for number, record in records:
        missing = [c for c in ("text", "label") if c not in record]
        if missing:
            raise DatasetError(
                f"{path}:{number}: missing column(s) {missing}; found {sorted(record)}"
            )
        text, label = str(record["text"] or "").strip(), str(record["label"] or "").strip()
        if not text or not label:
            raise DatasetError(f"{path}:{number}: empty text or label")
        rows.append((text, label))
    if not rows:
        raise DatasetError(f"{path}: no rows")
    return rows

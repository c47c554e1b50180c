"""Accuracy per slice from an image folder's metadata.csv (ELPV's defect probability and module
type are such columns)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console

from edgeft.data import load_image_folder
from edgeft.evaluation.slices import dataset_slices, slice_accuracy, slice_table


def _folder(root: Path, metadata: bool = True) -> Path:
    rows = []
    for split in ("train", "val", "test"):
        for label in ("defective", "functional"):
            (root / split / label).mkdir(parents=True)
            for i in range(8 if split == "train" else 4):
                name = f"{split}/{label}/cell{i}.png"
                Image.new("L", (8, 8), 40 * i).save(root / name)
                probability = "1.0" if label == "defective" else ("0.3333333333" if i else "0.0")
                module = "mono" if i % 2 else "poly"
                rows.append({"split": split, "file": name, "label": label,
                             "defect_probability": probability, "module_type": module,
                             "serial": f"S{split}{label}{i}"})  # fmt: skip
    if metadata:
        with open(root / "metadata.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return root


def test_every_few_valued_column_gives_one_slice_per_value(tmp_path: Path) -> None:
    dataset = load_image_folder(_folder(tmp_path))
    slices = dataset_slices(dataset, "test")
    assert {"defect_probability=0", "defect_probability=0.333", "defect_probability=1",
            "module_type=mono", "module_type=poly"} <= set(slices)  # fmt: skip
    assert list(slices)[:3] == [
        "defect_probability=0",
        "defect_probability=0.333",
        "defect_probability=1",
    ]  # numeric values in numeric order
    assert slices["defect_probability=1"].sum() == 4 and slices["module_type=mono"].sum() == 4
    assert sum(mask.sum() for name, mask in slices.items() if name.startswith("module")) == 8
    classes = dataset.classes
    labels = np.array([e.label for e in dataset.splits["test"]])
    # a model that calls every cell functional: right on the functional ones only
    logits = np.zeros((len(labels), 2))
    logits[:, classes.index("functional")] = 1.0
    scores = slice_accuracy(logits, labels, slices)
    assert scores["defect_probability=1"] == {"examples": 4, "accuracy": 0.0}
    assert scores["defect_probability=0.333"] == {"examples": 3, "accuracy": 1.0}
    assert scores["module_type=mono"]["accuracy"] == 0.5
    table = slice_table("per slice", [("fp32", {"slices": scores}), ("int8", {"slices": scores})])
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    assert "defect_probability=1" in text and "0.0000" in text and "int8" in text


def test_columns_with_too_many_values_and_folders_without_metadata_give_none(
    tmp_path: Path,
) -> None:
    dataset = load_image_folder(_folder(tmp_path / "with"))
    serial = [name for name in dataset_slices(dataset, "test") if name.startswith("serial=")]
    assert len(serial) == 8  # 8 test cells, 8 values: within the cap of 12
    train = dataset_slices(dataset, "train")  # 16 cells, 16 serials: over the cap
    assert not [name for name in train if name.startswith("serial=")]
    assert "module_type=mono" in train
    bare = load_image_folder(_folder(tmp_path / "without", metadata=False))
    assert dataset_slices(bare, "test") == {}
    assert slice_table("per slice", [("fp32", {})]) is None

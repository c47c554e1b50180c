"""Datasets: image folders, text tables and the built-in ELPV demo, split and fingerprinted."""

from __future__ import annotations

from pathlib import Path

from edgeft.data.dataset import ClassificationDataset, Example
from edgeft.data.elpv import VARIANTS as ELPV_VARIANTS
from edgeft.data.elpv import elpv_recipe, materialise_elpv
from edgeft.data.extension import DatasetExtension, labelled_examples
from edgeft.data.image_folder import load_image_folder
from edgeft.data.inspection import DatasetReport, inspect_dataset
from edgeft.data.rotten_tomatoes import NAME as ROTTEN_TOMATOES
from edgeft.data.rotten_tomatoes import materialise_rotten_tomatoes, split_recipe
from edgeft.data.splits import SPLITS, stratified_split
from edgeft.data.text_table import is_text_source, load_text_table
from edgeft.errors import DatasetError

BUILTIN_DATASETS = (*ELPV_VARIANTS, ROTTEN_TOMATOES)


def load_dataset(source: str | Path, seed: int = 0) -> ClassificationDataset:
    """A built-in name (``elpv``, ``elpv4``, ``rotten-tomatoes``), a CSV/JSONL file or folder,
    an image folder, or the ``dataset.json`` of a run retrained with ``--init-from`` (its
    recorded seed, not ``seed``)."""
    if str(source) in ELPV_VARIANTS:
        folder = materialise_elpv(str(source))
        dataset = load_image_folder(folder, seed=seed)
        dataset.source = str(source)
        dataset.split_recipe = elpv_recipe(folder)
        return dataset
    if str(source) == ROTTEN_TOMATOES:
        folder = materialise_rotten_tomatoes()
        dataset = load_text_table(folder, seed=seed)
        dataset.source = ROTTEN_TOMATOES
        dataset.split_recipe = split_recipe(folder)
        return dataset
    path = Path(source)
    if not path.exists():
        raise DatasetError(
            f"{path}: no such file or folder (built-in datasets: {', '.join(BUILTIN_DATASETS)})"
        )
    if path.is_file() and path.suffix == ".json":
        return DatasetExtension.read(path).load(str(path), load_dataset)
    if is_text_source(path):
        return load_text_table(path, seed=seed)
    return load_image_folder(path, seed=seed)


__all__ = [
    "BUILTIN_DATASETS",
    "SPLITS",
    "ClassificationDataset",
    "DatasetExtension",
    "DatasetReport",
    "Example",
    "inspect_dataset",
    "labelled_examples",
    "load_dataset",
    "load_image_folder",
    "load_text_table",
    "materialise_elpv",
    "stratified_split",
]

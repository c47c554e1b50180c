"""A labelled folder or table listed whole, for ``edgeft validate --data`` on the box."""

from __future__ import annotations

from pathlib import Path

from edgeft.data import SPLITS, load_dataset
from edgeft.data.image_folder import class_folders
from edgeft.runtime.validation import LabelledItems


def labelled_items(data: Path) -> LabelledItems:
    """Every item of a labelled image folder (``<label>/<image>``, however few) or text table,
    with its label name; nothing is held out, since nothing here is trained."""
    if data.is_dir() and any(p.is_dir() for p in data.iterdir()):
        by_class = class_folders(data)
        return LabelledItems(
            [str(file) for files in by_class.values() for file in files],
            [label for label, files in by_class.items() for _ in files],
            str(data),
        )
    dataset = load_dataset(data)
    examples = [e for split in SPLITS for e in dataset.splits[split]]
    return LabelledItems(
        [e.item for e in examples], [dataset.classes[e.label] for e in examples], str(data)
    )

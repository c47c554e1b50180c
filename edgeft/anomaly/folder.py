"""An inspection folder in the MVTec AD layout, read as it is:

    train/good/*.png                         good parts only: what the model learns
    val/good/, val/<defect>/   (optional)    where the threshold is chosen
    test/good/, test/<defect>/ (optional)    what eval reports
    ground_truth/<defect>/<name>_mask.png    (optional) a defect's pixels, white on black

Without ``val/``, a recorded share of ``train/good`` becomes validation (and, only when asked,
a share of each ``test/<defect>``). Everything is checked before anything is fitted: a training
folder that holds other classes, an empty ``good/``, a mask that names no image or has another
size, images of mixed sizes or channels are each refused with one line naming the file.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgeft.bundle.anomaly_spec import VERDICTS
from edgeft.data.dataset import ClassificationDataset, Example
from edgeft.errors import DatasetError, EdgeftError
from edgeft.evaluation.slices import METADATA_FILE, metadata_rows

GOOD = "good"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
MASK_SUFFIX = "_mask"


@dataclass(frozen=True)
class InspectionItem:
    """One image to score: ``defect`` is None for a good part; ``mask`` marks the defect."""

    path: Path
    defect: str | None = None
    mask: Path | None = None

    @property
    def is_defective(self) -> bool:
        return self.defect is not None


@dataclass(frozen=True)
class InspectionFolder:
    """The folder's items by role, the image size and mode they all share, and how the
    validation items were chosen (recorded with the model, so the split can be rebuilt)."""

    root: Path
    train: list[Path]
    val: list[InspectionItem]
    test: list[InspectionItem]
    size: tuple[int, int]
    mode: str
    val_recipe: dict[str, object] = field(default_factory=dict)

    @property
    def defects(self) -> list[str]:
        return sorted({i.defect for i in [*self.val, *self.test] if i.defect is not None})

    def as_dataset(self) -> ClassificationDataset:
        """The folder as two classes, good and defect (``VERDICTS``), for what works on labelled
        splits: calibration sets, the int8 budget's search and confirmation slices."""

        def examples(items: list[InspectionItem]) -> list[Example]:
            return [Example(str(i.path), int(i.is_defective)) for i in items]

        return ClassificationDataset(
            "image",
            list(VERDICTS),
            {"train": [Example(str(p), 0) for p in self.train], "val": examples(self.val),
             "test": examples(self.test)},
            str(self.root),
            dict(self.val_recipe),
            self.root,
        )  # fmt: skip


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _classes(folder: Path) -> dict[str, list[Path]]:
    if not folder.is_dir():
        return {}
    found = {d.name: images_in(d) for d in sorted(folder.iterdir()) if d.is_dir()}
    loose = images_in(folder)
    if loose:
        raise DatasetError(f"{loose[0]}: images go in {folder}/good/ or {folder}/<defect>/")
    return found


def _masks(root: Path, defect: str, images: list[Path]) -> dict[Path, Path]:
    """Each image's mask in ``ground_truth/<defect>/``; a mask that names no image is refused."""
    folder = root / "ground_truth" / defect
    if not folder.is_dir():
        return {}
    by_name = {p.stem: p for p in images}
    masks = {}
    for mask in images_in(folder):
        name = mask.stem.removesuffix(MASK_SUFFIX)
        if name not in by_name:
            raise DatasetError(f"{mask}: no image test/{defect}/{name}.* for this mask")
        masks[by_name[name]] = mask
    return masks


def _items(root: Path, role: str) -> list[InspectionItem]:
    items = []
    for name, images in _classes(root / role).items():
        defect = None if name == GOOD else name
        masks = _masks(root, name, images) if defect else {}
        items += [InspectionItem(p, defect, masks.get(p)) for p in images]
    return items


def _header(path: Path) -> tuple[tuple[int, int], str]:
    try:
        with Image.open(path) as image:
            return image.size, image.mode
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetError(f"{path}: not a readable image ({exc})") from None


def check_images(
    paths: Iterable[Path], masks: Iterable[tuple[Path, Path]]
) -> tuple[tuple[int, int], str]:
    """One size and one channel layout for every image; each mask the size of its image."""
    first: tuple[Path, tuple[int, int], str] | None = None
    for path in paths:
        size, mode = _header(path)
        if first is None:
            first = (path, size, mode)
        elif (size, mode) != first[1:]:
            raise DatasetError(
                f"{path}: {size[0]}x{size[1]} {mode}, but {first[0].name} is "
                f"{first[1][0]}x{first[1][1]} {first[2]}; every image must share one size and mode"
            )
    assert first is not None
    for image, mask in masks:
        size, _ = _header(mask)
        if size != first[1]:
            raise DatasetError(
                f"{mask}: {size[0]}x{size[1]}, but its image {image.name} is "
                f"{first[1][0]}x{first[1][1]}"
            )
    return first[1], first[2]


def read_inspection_folder(
    root: str | Path, val_share: float = 0.1, defects_to_val: float = 0.0, seed: int = 0
) -> InspectionFolder:
    """Read and check ``root``. Without ``val/``: ``val_share`` of ``train/good`` (and
    ``defects_to_val`` of each ``test/<defect>``, 0 unless asked) become validation."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    train_classes = _classes(root / "train")
    others = sorted(set(train_classes) - {GOOD})
    if others:
        raise DatasetError(
            f"{root / 'train'}: holds {', '.join(others)} beside good/; an anomaly model learns "
            "from good parts only (defects go in test/ or val/)"
        )
    train = train_classes.get(GOOD, [])
    if not train:
        raise DatasetError(f"{root / 'train' / GOOD}: no good images to learn from")
    val, test = _items(root, "val"), _items(root, "test")
    recipe: dict[str, object] = {"val": "val/ folder"}
    if not val:
        rng = random.Random(seed)
        shuffled = rng.sample(train, len(train))
        count = max(1, round(val_share * len(train))) if len(train) > 1 else 0
        val = [InspectionItem(p) for p in shuffled[:count]]
        train = sorted(shuffled[count:])
        moved: list[InspectionItem] = []
        if defects_to_val > 0:
            for defect in sorted({i.defect for i in test if i.defect}):
                of_defect = [i for i in test if i.defect == defect]
                moved += rng.sample(of_defect, round(defects_to_val * len(of_defect)))
            test = [i for i in test if i not in moved]
            val += moved
        recipe = {
            "val": "share of train/good",
            "val_share": val_share,
            "seed": seed,
            "defects_to_val": defects_to_val,
        }
    everything = [*train, *(i.path for i in [*val, *test])]
    masks = [(i.path, i.mask) for i in [*val, *test] if i.mask is not None]
    size, mode = check_images(everything, masks)
    return InspectionFolder(root, train, val, test, size, mode, recipe)


def recorded_folder(provenance: dict[str, Any], data: str | None = None) -> InspectionFolder:
    """``data``, else the inspection folder a run or bundle records, split as it was."""
    recorded = provenance.get("dataset") or {}
    source = data or recorded.get("source")
    if source is None:
        raise EdgeftError("no inspection folder is recorded; pass --data")
    how = (recorded.get("split") or {}) if data is None else {}
    return read_inspection_folder(
        source,
        float(how.get("val_share", 0.1)),
        float(how.get("defects_to_val", 0.0)),
        int(how.get("seed", 0)),
    )


def variants_of(
    images: Sequence[Path], roots: Sequence[Path], column: str
) -> tuple[list[str], np.ndarray]:
    """The variant names (sorted) and each image's index among them, from the ``column`` of
    ``metadata.csv`` in ``roots`` (the first that lists an image); refused, naming the image,
    when one has no value, and when fewer than two variants are found."""
    found: list[str | None] = [None] * len(images)
    for root in roots:
        for i, row in enumerate(metadata_rows(root, images)):
            found[i] = found[i] or row.get(column) or None
    missing = [image for image, value in zip(images, found, strict=True) if value is None]
    if missing:
        listed = ", ".join(str(r / METADATA_FILE) for r in roots)
        raise DatasetError(
            f"{missing[0]}: no {column!r} in {listed} ({len(missing)} training image(s) lack "
            "one); --group-by needs a variant for every good training part"
        )
    names = sorted({v for v in found if v is not None})
    if len(names) < 2:
        raise DatasetError(
            f"--group-by {column}: every training part is {names[0]!r}; nothing to group"
        )
    index = {name: i for i, name in enumerate(names)}
    return names, np.array([index[v] for v in found if v is not None], dtype=np.int32)

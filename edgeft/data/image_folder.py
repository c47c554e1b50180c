"""Image-folder datasets: ``root/<class>/*`` (split here) or ``root/{train,val,test}/<class>/*``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgeft.bundle.labels import check_class_names
from edgeft.data.dataset import ClassificationDataset, Example
from edgeft.data.splits import DEFAULT_FRACTIONS, SPLITS, stratified_split
from edgeft.errors import DatasetError
from edgeft.runtime.images import IMAGE_SUFFIXES


def load_image_folder(
    root: str | Path, seed: int = 0, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> ClassificationDataset:
    """Find the images; a folder without ``train/`` is split stratified with ``seed``.

    In the split layout ``val``/``test`` may be missing: they are then carved from ``train`` with
    the same stratified rule, in the proportions of ``fractions``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    if (root / "train").is_dir():
        return _split_layout(root, seed, fractions)
    by_class = class_folders(root)
    classes = sorted(by_class)
    files = [(str(f), classes.index(c)) for c in classes for f in by_class[c]]
    parts = stratified_split([label for _, label in files], fractions, seed, names=classes)
    splits = {s: [Example(*files[i]) for i in idx] for s, idx in zip(SPLITS, parts, strict=True)}
    recipe = {"method": "stratified", "fractions": list(fractions), "seed": seed}
    return ClassificationDataset("image", classes, splits, str(root), recipe, root)


def class_folders(folder: Path) -> dict[str, list[Path]]:
    """Class name -> sorted image files; empty class folders are an error, not a silent skip."""
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise DatasetError(f"{folder}: no class folders (expected {folder}/<class>/<image>)")
    check_class_names((sub.name for sub in subdirs), folder)
    out = {}
    for sub in subdirs:
        images = sorted(
            p for p in sub.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not images:
            raise DatasetError(
                f"{sub}: class folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        out[sub.name] = images
    return out


def _split_layout(root: Path, seed: int, fractions: Sequence[float]) -> ClassificationDataset:
    given = {s: class_folders(root / s) for s in SPLITS if (root / s).is_dir()}
    classes = sorted(given["train"])
    for split, by_class in given.items():
        unknown = sorted(set(by_class) - set(classes))
        if unknown:
            raise DatasetError(
                f"{root / split}: classes {unknown} do not appear in train; "
                "a model cannot learn labels it never sees"
            )
    splits = {
        s: [Example(str(f), classes.index(c)) for c in sorted(fc) for f in fc[c]]
        for s, fc in given.items()
    }
    recipe: dict[str, object] = {"method": "given"}
    missing = [s for s in SPLITS if s not in given]
    if missing:
        train = splits["train"]
        share = {"train": fractions[0], "val": fractions[1], "test": fractions[2]}
        keep = ["train", *missing]
        total = sum(share[s] for s in keep)
        parts = stratified_split(
            [e.label for e in train], [share[s] / total for s in keep], seed, names=classes
        )
        for split, idx in zip(keep, parts, strict=True):
            splits[split] = [train[i] for i in idx]
        recipe = {
            "method": "given",
            "carved_from_train": missing,
            "seed": seed,
            "fractions": list(fractions),
        }
    return ClassificationDataset("image", classes, splits, str(root), recipe, root)

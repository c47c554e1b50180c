"""Calibration sets: which examples int8 ranges are measured on, chosen reproducibly.

A recipe names a source (a dataset, or a flat folder of unlabelled images), a split, a size, a
seed and a selection rule. Recipes live as TOML files in ``calibration/``; ``--calibration 300``
is the default recipe with another size. The test split is never used: a recipe that asks for it,
or a folder holding test images, is refused, because int8 ranges fitted on test data flatter the
accuracy the budget is checked against.
"""

from __future__ import annotations

import hashlib
import random
import tomllib
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from edgeft.bundle import sha256_file
from edgeft.data import ClassificationDataset, Example, load_dataset
from edgeft.errors import EdgeftError
from edgeft.runtime.images import IMAGE_SUFFIXES

# Calibration methods the quantizers accept (each backend maps them onto its engine's own).
METHODS = ("minmax", "mean-minmax", "entropy", "percentile")

RECIPE_FOLDER = "calibration"
MIN_ADVISED = 100


@dataclass(frozen=True)
class CalibrationRecipe:
    """``source`` None means the dataset the bundle was trained on."""

    name: str = "default"
    source: str | None = None
    split: str = "train"
    size: int = 300
    seed: int = 0
    selection: Literal["stratified", "random"] = "stratified"

    def __post_init__(self) -> None:
        if self.split == "test":
            raise EdgeftError(
                f"calibration recipe {self.name!r} draws from the test split; calibrate on train "
                "or val so the test score stays an honest estimate"
            )
        if self.split not in ("train", "val"):
            raise EdgeftError(f"calibration split must be train or val, not {self.split!r}")
        if self.size < 1:
            raise EdgeftError("calibration size must be at least 1")
        if self.selection not in ("stratified", "random"):
            raise EdgeftError(
                f"calibration selection must be stratified or random, not {self.selection!r}"
            )


@dataclass
class CalibrationSet:
    """The chosen items (image paths or texts), with a content fingerprint for the manifest."""

    items: list[str]
    recipe: CalibrationRecipe
    fingerprint: str
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {
            "recipe": asdict(self.recipe),
            "size": len(self.items),
            "fingerprint": self.fingerprint,
        }


def resolve_recipe(spec: str | int | None, search: Path | None = None) -> CalibrationRecipe:
    """``None`` (the default recipe), a size, a TOML file, a recipe name in ``calibration/``,
    or a flat folder of unlabelled images."""
    if spec is None:
        return CalibrationRecipe()
    text = str(spec)
    if text.isdigit():
        return CalibrationRecipe(name=f"default-{text}", size=int(text))
    path = Path(text)
    if path.is_dir():
        return CalibrationRecipe(name=path.name, source=str(path), selection="random")
    candidates = [path] if path.suffix == ".toml" else []
    candidates += [folder / RECIPE_FOLDER / f"{text}.toml" for folder in (search or Path.cwd(),)]
    for candidate in candidates:
        if candidate.is_file():
            return _read_recipe(candidate)
    raise EdgeftError(
        f"calibration {text!r} is not a size, a folder, a .toml recipe or a recipe name in "
        f"{(search or Path.cwd()) / RECIPE_FOLDER}"
    )


def _read_recipe(path: Path) -> CalibrationRecipe:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise EdgeftError(f"{path}: not valid TOML ({exc})") from exc
    known = set(CalibrationRecipe.__dataclass_fields__)
    unknown = set(data) - known
    if unknown:
        raise EdgeftError(f"{path}: unknown calibration keys {', '.join(sorted(unknown))}")
    return CalibrationRecipe(**{"name": path.stem} | data)


def select_calibration(
    recipe: CalibrationRecipe, dataset: ClassificationDataset | None
) -> CalibrationSet:
    """Pick the calibration items; ``dataset`` is the bundle's (its test split is guarded)."""
    if (
        recipe.source is not None
        and Path(recipe.source).is_dir()
        and _is_flat_image_folder(Path(recipe.source))
    ):
        items = sorted(
            str(p) for p in Path(recipe.source).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
        )
        random.Random(recipe.seed).shuffle(items)
        chosen = sorted(items[: recipe.size])
        overlap = _overlap_with_test(chosen, dataset, "image")
        if overlap:
            raise EdgeftError(
                f"calibration folder {recipe.source} holds {len(overlap)} test image(s) of "
                f"{dataset.source if dataset else 'the dataset'} (e.g. {overlap[0]}); remove them"
            )
        return _finish(chosen, recipe, "image", [])
    source = dataset if recipe.source is None else load_dataset(recipe.source, seed=recipe.seed)
    if source is None:
        raise EdgeftError(
            "this bundle records no dataset to calibrate on; pass --calibration FOLDER of images "
            "or --data"
        )
    pool = source.splits[recipe.split]
    test_keys = _test_keys(dataset) if dataset is not None else set()
    clean = [e for e in pool if _key(e.item, source.kind) not in test_keys]
    warnings = []
    if len(clean) < len(pool):
        warnings.append(
            f"left out {len(pool) - len(clean)} {recipe.split} item(s) duplicated in test"
        )
    picked = _choose(clean, recipe)
    return _finish([e.item for e in picked], recipe, source.kind, warnings)


def _finish(
    items: list[str], recipe: CalibrationRecipe, kind: str, warnings: list[str]
) -> CalibrationSet:
    if not items:
        raise EdgeftError(f"calibration recipe {recipe.name!r} selected no items")
    if len(items) < recipe.size:
        warnings.append(f"asked for {recipe.size} calibration items, only {len(items)} available")
    if len(items) < MIN_ADVISED:
        warnings.append(
            f"only {len(items)} calibration items: int8 ranges from fewer than {MIN_ADVISED} are "
            "often unstable (300 is the usual choice)"
        )
    digest = hashlib.sha256()
    for item in sorted(_key(i, kind) for i in items):
        digest.update(item.encode() + b"\n")
    return CalibrationSet(items, replace(recipe), digest.hexdigest(), warnings)


def _choose(pool: list[Example], recipe: CalibrationRecipe) -> list[Example]:
    """Seeded selection; stratified keeps each class's share of the pool."""
    rng = random.Random(recipe.seed)
    if recipe.selection == "random" or recipe.size >= len(pool):
        shuffled = pool[:]
        rng.shuffle(shuffled)
        return shuffled[: recipe.size]
    by_class: dict[int, list[Example]] = defaultdict(list)
    for example in pool:
        by_class[example.label].append(example)
    chosen: list[Example] = []
    for label in sorted(by_class):
        members = by_class[label]
        rng.shuffle(members)
        chosen += members[: max(1, round(recipe.size * len(members) / len(pool)))]
    rng.shuffle(chosen)
    return chosen[: recipe.size]


def _is_flat_image_folder(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir() if p.is_file())


def _key(item: str, kind: str) -> str:
    return sha256_file(Path(item)) if kind == "image" else item


def _test_keys(dataset: ClassificationDataset) -> set[str]:
    return {_key(e.item, dataset.kind) for e in dataset.splits["test"]}


def _overlap_with_test(
    items: list[str], dataset: ClassificationDataset | None, kind: str
) -> list[str]:
    if dataset is None or dataset.kind != kind:
        return []
    keys = _test_keys(dataset)
    return [item for item in items if _key(item, kind) in keys]

"""Retraining data: a run's recorded dataset extended with newly labelled items.

The new items join train and validation only; the recorded test split stays exactly as it was,
so a retrained model and the model it would replace are scored on the same yardstick. The
extension is written to the new run as ``dataset.json``, which ``load_dataset`` reads back.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeft.data.dataset import (
    ClassificationDataset,
    Example,
    Kind,
    content_key,
    examples_fingerprint,
)
from edgeft.data.image_folder import class_folders
from edgeft.data.splits import DEFAULT_FRACTIONS, stratified_split
from edgeft.data.text_table import TEXT_SUFFIXES, read_rows
from edgeft.errors import DatasetError

EXTENSION_FILE = "dataset.json"
EXTENDED = "extended"  # the split recipe's method
_LISTED = 5


def labelled_examples(source: str | Path, classes: Sequence[str]) -> tuple[Kind, list[Example]]:
    """Every item of a labelled image folder (``<class>/<image>``, however few per class) or a
    CSV/JSONL text table (one file), labelled over ``classes``; nothing is split off. A class outside
    ``classes`` is an error: no model can learn or be scored on a label it does not have."""
    path = Path(source)
    if path.is_file() and path.suffix.lower() in TEXT_SUFFIXES:
        kind: Kind = "text"
        rows = read_rows(path)
    elif path.is_dir():
        kind = "image"
        rows = [(str(f), name) for name, files in class_folders(path).items() for f in files]
    else:
        raise DatasetError(f"{path}: no such image folder or CSV/JSONL text table")
    unknown = sorted({name for _, name in rows} - set(classes))
    if unknown:
        raise DatasetError(
            f"{path}: classes {', '.join(unknown)} are not among the model's labels "
            f"({', '.join(classes)})"
        )
    index = {name: i for i, name in enumerate(classes)}
    return kind, [Example(item, index[name]) for item, name in rows]


Loader = Callable[..., ClassificationDataset]  # ``edgeft.data.load_dataset``


def reload_recorded(recorded: dict[str, Any], load_dataset: Loader) -> ClassificationDataset:
    """A dataset as a run recorded it (``describe()``), split as it was, read with
    ``load_dataset`` (the package's loader, which reads extensions through this module). Every
    split's fingerprint must match, not only validation's: the test split is what stays the
    yardstick."""
    seed = int((recorded.get("split_recipe") or {}).get("seed", 0))
    dataset = load_dataset(recorded["source"], seed=seed)
    changed = [
        split
        for split, expected in (recorded.get("fingerprints") or {}).items()
        if dataset.fingerprint(split) != expected
    ]
    if changed:
        raise DatasetError(
            f"{recorded['source']}: the {', '.join(changed)} split(s) differ from the ones the run "
            "trained on (fingerprints changed)"
        )
    return dataset


@dataclass(frozen=True)
class DatasetExtension:
    """A recorded dataset (``base``, a run's ``describe()``) plus the labelled items in ``new``,
    split into train and validation with ``seed``."""

    base: dict[str, Any]
    new: str
    seed: int = 0

    @classmethod
    def read(cls, path: Path) -> DatasetExtension:
        recipe = json.loads(path.read_text())
        return cls(recipe["base"], recipe["new"], int(recipe.get("seed", 0)))

    def load(self, source: str, load_dataset: Loader) -> ClassificationDataset:
        """The extended dataset, named ``source`` (where its split recipe is written); its base
        read with ``load_dataset``.

        A new item that is a copy of an old test item is refused (training on it would inflate
        the test score both models are judged by). A copy of an old train or validation item, or
        of another new item, with the same label is dropped and recorded: it adds nothing, and a
        twin on each side of the train/validation line would flatter validation. A copy under
        another label is refused, as contradictory.
        """
        base = reload_recorded(self.base, load_dataset)
        kind, new = labelled_examples(self.new, base.classes)
        if kind != base.kind:
            raise DatasetError(f"{self.new}: {kind} items, but the run trained on {base.kind}s")
        kept, dropped = _without_copies(base, new, self.new)
        fractions = list(base.split_recipe.get("fractions") or DEFAULT_FRACTIONS)
        train, val = _split_train_val(kept, base.classes, fractions[:2], self.seed)
        splits = {
            "train": base.splits["train"] + train,
            "val": base.splits["val"] + val,
            "test": base.splits["test"],
        }
        recipe = {
            "method": EXTENDED,
            "base": self.base,
            "new": self.new,
            "seed": self.seed,
            "fractions": fractions,  # the base's: a further extension splits in the same shares
            "new_items": {
                "items": len(new),
                "fingerprint": examples_fingerprint(new, base.classes, kind),
                "sizes": {"train": len(train), "val": len(val)},
                "dropped_copies": dropped,
            },
        }
        return ClassificationDataset(kind, base.classes, splits, source, recipe)


def _without_copies(
    base: ClassificationDataset, new: list[Example], source: str
) -> tuple[list[Example], list[str]]:
    """The new examples left after the copy rules of ``DatasetExtension.load``, and those
    dropped."""
    kind, classes = base.kind, base.classes
    test = {content_key(e.item, kind): e.item for e in base.splits["test"]}
    seen = {content_key(e.item, kind): e for e in base.splits["train"] + base.splits["val"]}
    kept: list[Example] = []
    dropped: list[str] = []
    leaks: list[str] = []
    conflicts: list[str] = []
    for example in new:
        key = content_key(example.item, kind)
        if key in test:
            leaks.append(f"{example.item} (= test item {test[key]})")
            continue
        twin = seen.setdefault(key, example)
        if twin is example:
            kept.append(example)
        elif twin.label == example.label:
            dropped.append(example.item)
        else:
            conflicts.append(
                f"{example.item} ({classes[example.label]}) = {twin.item} ({classes[twin.label]})"
            )
    if leaks:
        raise DatasetError(
            f"{source}: {len(leaks)} item(s) are copies of the old test split, which must stay "
            f"unseen: {_listed(leaks)}"
        )
    if conflicts:
        raise DatasetError(
            f"{source}: {len(conflicts)} item(s) are copies labelled differently: "
            f"{_listed(conflicts)}"
        )
    return kept, dropped


def _split_train_val(
    examples: list[Example], classes: Sequence[str], fractions: Sequence[float], seed: int
) -> tuple[list[Example], list[Example]]:
    """Stratified in the recorded train:val proportion. A class with a single new item trains:
    it cannot be on both sides, and one validation item would say little about it."""
    counts = Counter(e.label for e in examples)
    single = [i for i, e in enumerate(examples) if counts[e.label] == 1]
    rest = [i for i, e in enumerate(examples) if counts[e.label] > 1]
    total = fractions[0] + fractions[1]
    train_part, val_part = (
        stratified_split(
            [examples[i].label for i in rest],
            (fractions[0] / total, fractions[1] / total),
            seed,
            names=classes,
        )
        if rest
        else ([], [])
    )
    train = sorted([*single, *(rest[j] for j in train_part)])
    return [examples[i] for i in train], [examples[rest[j]] for j in val_part]


def _listed(lines: list[str]) -> str:
    more = f"; and {len(lines) - _LISTED} more" if len(lines) > _LISTED else ""
    return "; ".join(lines[:_LISTED]) + more

"""A dataset split through a bundle's own encoder, labels mapped onto the bundle's classes:
what every build-side score (eval, the int8 budget, compare) runs its models on."""

from __future__ import annotations

from collections.abc import Sequence

from rich.progress import Progress

from edgeft.bundle import Bundle
from edgeft.data import ClassificationDataset
from edgeft.errors import DatasetError
from edgeft.runtime.scoring import EncodedSplit, encode_items


def encode_split(
    bundle: Bundle,
    dataset: ClassificationDataset,
    split: str,
    progress: Progress | None = None,
    indices: Sequence[int] | None = None,
) -> EncodedSplit:
    """A dataset split (or the ``indices`` of it) through the runtime's encoder, labels mapped
    onto the bundle's classes."""
    examples = dataset.splits[split]
    if indices is not None:
        examples = [examples[i] for i in indices]
    index = {name: i for i, name in enumerate(bundle.manifest.labels)}
    missing = sorted(set(dataset.classes) - set(index))
    if missing:
        raise DatasetError(
            f"{dataset.source}: classes {', '.join(missing)} are not among the bundle's labels "
            f"({', '.join(bundle.manifest.labels)})"
        )
    labels = [index[dataset.classes[e.label]] for e in examples]
    return encode_items(
        bundle, [e.item for e in examples], labels, progress, f"encoding {split} ({len(examples)})"
    )

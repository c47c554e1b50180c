"""torch datasets over a split of image examples, with bad files found before training starts."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from rich.progress import track
from torch.utils.data import Dataset

from edgeft.data import Example
from edgeft.errors import DatasetError
from edgeft.runtime.images import ImageDecodeError, decode_image


def drop_unreadable(examples: Sequence[Example], skip_bad: bool) -> tuple[list[Example], list[str]]:
    """Decode every image once; a bad one is an error naming it, or skipped and counted."""
    good, bad = [], []
    for example in track(examples, description="Checking images", transient=True):
        try:
            decode_image(example.item)
            good.append(example)
        except ImageDecodeError as exc:
            bad.append(str(exc))
    if bad and not skip_bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DatasetError(f"{bad[0]}{more}; fix or remove it, or pass --skip-bad")
    return good, bad


class ImageExamples(Dataset[tuple[torch.Tensor, int]]):
    def __init__(self, examples: Sequence[Example], transform: Callable[..., torch.Tensor]) -> None:
        self.examples = list(examples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        example = self.examples[index]
        return self.transform(decode_image(example.item)), example.label

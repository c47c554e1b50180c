"""torch batches over a split of texts, tokenized by the runtime's own ``TextEncoder``: the model
trains on exactly the token ids the edge box will feed it."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from edgeft.data import Example
from edgeft.runtime.encoders import TextEncoder


class TextCollator:
    """A list of examples -> ((input_ids, attention_mask, ...), labels), padded to the longest."""

    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder = encoder

    def __call__(
        self, examples: Sequence[Example]
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        arrays = self.encoder.encode([e.item for e in examples])
        inputs = tuple(torch.from_numpy(arrays[name]) for name in self.encoder.input_names)
        return inputs, torch.tensor([e.label for e in examples])

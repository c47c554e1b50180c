"""What an exported graph takes, by preprocessing kind: example tensors to trace with, the
manifest's tensor specs, and which axes stay dynamic."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edgeft.bundle import ImagePreprocessing, Preprocessing, TensorSpec
from edgeft.zoo.huggingface_text import INPUT_NAMES

_EXAMPLE_TOKENS = 16


@dataclass(frozen=True)
class ModelInputs:
    example: dict[str, torch.Tensor]
    specs: list[TensorSpec]
    dynamic_axes: dict[str, dict[int, str]]


def model_inputs(spec: Preprocessing, model: torch.nn.Module) -> ModelInputs:
    """Images: one NCHW float tensor, dynamic batch. Texts: token ids and attention mask,
    dynamic batch and sequence (a batch is padded to its longest text, not a fixed length);
    the example ids stay inside the model's vocabulary, which a user's own may keep small."""
    generator = torch.Generator().manual_seed(0)
    if isinstance(spec, ImagePreprocessing):
        return ModelInputs(
            {"input": torch.randn(2, 3, *spec.crop, generator=generator)},
            [TensorSpec("input", (-1, 3, *spec.crop), "float32")],
            {"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    vocabulary = next(m for m in model.modules() if isinstance(m, torch.nn.Embedding))
    ids = torch.randint(
        min(1000, vocabulary.num_embeddings // 2),
        vocabulary.num_embeddings,
        (2, _EXAMPLE_TOKENS),
        generator=generator,
    )
    mask = torch.ones_like(ids)
    mask[1, _EXAMPLE_TOKENS // 2 :] = 0  # a padded row, so masking is part of what is checked
    example = dict(zip(INPUT_NAMES, (ids, mask), strict=True))
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    return ModelInputs(
        example,
        [TensorSpec(name, (-1, -1), "int64") for name in INPUT_NAMES],
        axes | {"logits": {0: "batch"}},
    )

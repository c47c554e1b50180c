"""Inputs (images or texts) -> the named arrays a bundle's model takes, as the edge box does it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from edgeft.bundle import Bundle, ImagePreprocessing, TextPreprocessing
from edgeft.errors import EdgeftError
from edgeft.runtime.preprocess import ImageInput, ImagePreprocessor


class InputEncoder(Protocol):
    def encode(self, items: Sequence) -> dict[str, np.ndarray]: ...


class ImageEncoder:
    """Decode, resize, crop and normalise a batch of images into the model's one input."""

    def __init__(self, spec: ImagePreprocessing, input_name: str) -> None:
        self.preprocess = ImagePreprocessor(spec)
        self.input_name = input_name

    def encode(self, items: Sequence[ImageInput]) -> dict[str, np.ndarray]:
        return {self.input_name: self.preprocess.batch(items)}


class TextEncoder:
    """The bundle's own tokenizer.json through the ``tokenizers`` library (no transformers).

    A batch is padded to its longest member only: padding a single input to a fixed length
    roughly doubles MiniLM's latency (STACK.md). Training encodes with this same class, so the
    edge box tokenizes exactly as the model learned.
    """

    def __init__(
        self, spec: TextPreprocessing, tokenizer_file: Path, input_names: Sequence[str]
    ) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.enable_truncation(spec.max_length)
        self.tokenizer.no_padding()
        self.input_names = list(input_names)

    def encode(self, items: Sequence[str]) -> dict[str, np.ndarray]:
        if not all(isinstance(item, str) for item in items):
            raise EdgeftError("text models take strings")
        encodings = self.tokenizer.encode_batch(list(items))
        length = max(len(e.ids) for e in encodings)
        arrays = {
            "input_ids": np.zeros((len(items), length), dtype=np.int64),
            "attention_mask": np.zeros((len(items), length), dtype=np.int64),
            "token_type_ids": np.zeros((len(items), length), dtype=np.int64),
        }
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            arrays["input_ids"][row, :n] = encoding.ids
            arrays["attention_mask"][row, :n] = encoding.attention_mask
            arrays["token_type_ids"][row, :n] = encoding.type_ids
        return {name: arrays[name] for name in self.input_names}


def encoder_for(bundle: Bundle) -> InputEncoder:
    manifest = bundle.manifest
    spec = manifest.preprocessing
    if isinstance(spec, ImagePreprocessing):
        return ImageEncoder(spec, manifest.inputs[0].name)
    return TextEncoder(spec, bundle.path_of(spec.tokenizer), [t.name for t in manifest.inputs])

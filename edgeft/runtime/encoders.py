"""Inputs (images or texts) -> the named arrays a bundle's model takes, as the edge box does it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from edgeft.bundle import Bundle, ImagePreprocessing, TextPreprocessing
from edgeft.errors import EdgeftError
from edgeft.runtime.input_statistics import Statistics, image_statistics, text_statistics
from edgeft.runtime.preprocess import ImageInput, ImagePreprocessor


class InputEncoder(Protocol):
    def encode(self, items: Sequence) -> dict[str, np.ndarray]: ...

    def check(self, inputs: Mapping[str, np.ndarray]) -> None:
        """Refuse already-encoded inputs (from a client) this model cannot take, naming why."""

    def sample(self) -> ImageInput | str:
        """A neutral input for a warm-up inference."""

    def statistics(self, inputs: Mapping[str, np.ndarray], items: Sequence | None) -> Statistics:
        """The monitor's input statistics of encoded ``inputs`` (``items``: the originals, when
        they arrived as images or strings rather than tensors)."""


class ImageEncoder:
    """Decode, resize, crop and normalise a batch of images into the model's one input."""

    def __init__(self, spec: ImagePreprocessing, input_name: str) -> None:
        self.preprocess = ImagePreprocessor(spec)
        self.input_name = input_name

    def encode(self, items: Sequence[ImageInput]) -> dict[str, np.ndarray]:
        return {self.input_name: self.preprocess.batch(items)}

    def check(self, inputs: Mapping[str, np.ndarray]) -> None:
        """Any finite pixel values are an image (the protocol has refused NaN and infinity)."""

    def sample(self) -> np.ndarray:
        return np.zeros((*self.preprocess.spec.crop, 3), dtype=np.uint8)

    def statistics(self, inputs: Mapping[str, np.ndarray], items: Sequence | None) -> Statistics:
        return image_statistics(inputs[self.input_name], self.preprocess.spec, items)


class TextEncoder:
    """The bundle's own tokenizer.json through the ``tokenizers`` library (no transformers).

    A batch is padded to its longest member only: padding a single input to a fixed length
    costs a short text the work of a long one. Training encodes with this same class, so the
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
        self.max_length = spec.max_length
        self.lowercase = spec.lowercase
        self.vocab_size = self.tokenizer.get_vocab_size(with_added_tokens=True)
        unknown = getattr(self.tokenizer.model, "unk_token", None)
        self.unknown_id = self.tokenizer.token_to_id(unknown) if unknown else None

    def encode(self, items: Sequence[str]) -> dict[str, np.ndarray]:
        if not all(isinstance(item, str) for item in items):
            raise EdgeftError("text models take strings")
        texts = [item.lower() for item in items] if self.lowercase else list(items)
        encodings = self.tokenizer.encode_batch(texts)
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

    def check(self, inputs: Mapping[str, np.ndarray]) -> None:
        """Token tensors as this tokenizer makes them: ids in its vocabulary, a 0/1 mask, type
        ids 0 (one text per row), no longer than the model's ``max_length``; an id beyond the
        embedding table would fail the engine for the whole batch."""
        allowed = {"input_ids": self.vocab_size - 1, "attention_mask": 1, "token_type_ids": 0}
        for name, array in inputs.items():
            if array.shape[-1] > self.max_length:
                raise EdgeftError(
                    f"input {name!r}: {array.shape[-1]} tokens, the model takes at most "
                    f"{self.max_length}"
                )
            if name in allowed and (array.min() < 0 or array.max() > allowed[name]):
                raise EdgeftError(f"input {name!r}: values must be in 0..{allowed[name]}")

    def sample(self) -> str:
        return "warm-up"

    def statistics(self, inputs: Mapping[str, np.ndarray], items: Sequence | None) -> Statistics:
        return text_statistics(inputs, self.unknown_id, items)


def encoder_for(bundle: Bundle) -> InputEncoder:
    manifest = bundle.manifest
    spec = manifest.preprocessing
    if isinstance(spec, ImagePreprocessing):
        return ImageEncoder(spec, manifest.inputs[0].name)
    return TextEncoder(spec, bundle.path_of(spec.tokenizer), [t.name for t in manifest.inputs])

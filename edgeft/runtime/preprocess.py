"""The bundle's image preprocessing in numpy + pillow, for the edge box (no torch).

Resize and crop follow torchvision's rules exactly (shorter side to ``resize`` with the longer
side truncated, crop offsets rounded), and the build side's eval transform resizes through PIL
too, so both produce the same tensor (a parity test holds them together).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from edgeft.bundle import ImagePreprocessing
from edgeft.runtime.images import check_image_size, decode_image

_PIL_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}

ImageInput = str | Path | bytes | Image.Image | np.ndarray


class ImagePreprocessor:
    """Decoded image -> float32 array (C, H, W) as the model was trained to see it."""

    def __init__(self, spec: ImagePreprocessing) -> None:
        self.spec = spec
        self._mean = np.asarray(spec.mean, dtype=np.float32).reshape(3, 1, 1)
        self._std = np.asarray(spec.std, dtype=np.float32).reshape(3, 1, 1)

    def __call__(self, source: ImageInput) -> np.ndarray:
        image = self.resize_only(self._as_rgb(source))
        image = image.crop(self._crop_box(*image.size))
        pixels = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0
        # C-contiguous: engines copy strided inputs element by element, which costs latency.
        return np.ascontiguousarray((pixels - self._mean) / self._std)

    def resize_only(self, image: Image.Image) -> Image.Image:
        """The first step alone (shorter side to ``resize``); at that size again it is a copy."""
        return image.resize(self._resized_size(*image.size), _PIL_FILTERS[self.spec.interpolation])

    def batch(self, sources: Sequence[ImageInput]) -> np.ndarray:
        return np.ascontiguousarray(np.stack([self(s) for s in sources]))

    @staticmethod
    def _as_rgb(source: ImageInput) -> Image.Image:
        if isinstance(source, Image.Image):
            return source.convert("RGB")
        if isinstance(source, np.ndarray):
            if source.dtype != np.uint8 or source.ndim not in (2, 3):
                raise ValueError("array images must be uint8 (H, W) or (H, W, C)")
            check_image_size("<array>", source.shape[1], source.shape[0])
            return Image.fromarray(source).convert("RGB")
        return decode_image(source)

    def _resized_size(self, width: int, height: int) -> tuple[int, int]:
        short, long = sorted((width, height))
        new_short, new_long = self.spec.resize, int(self.spec.resize * long / short)
        return (new_short, new_long) if width <= height else (new_long, new_short)

    def _crop_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        crop_h, crop_w = self.spec.crop
        if crop_h > height or crop_w > width:
            raise ValueError(f"crop {self.spec.crop} larger than resized image {(height, width)}")
        top = round((height - crop_h) / 2.0)
        left = round((width - crop_w) / 2.0)
        return left, top, left + crop_w, top + crop_h

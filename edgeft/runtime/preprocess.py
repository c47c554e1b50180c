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
from edgeft.runtime.images import check_image_size, decode_pixels, to_8bit

_PIL_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}

ImageInput = str | Path | bytes | Image.Image | np.ndarray


class ImagePreprocessor:
    """Decoded image -> float32 array (C, H, W) as the model was trained to see it.

    Grey sources stay one channel through resize and crop (PIL resamples each channel alike, so
    widening first would triple the work for the same pixels), and scaling and normalising are one
    multiply-add per channel written straight into the batch: at batch 1 on a small int8 model
    these steps otherwise cost as much as a third of the engine call.
    """

    def __init__(self, spec: ImagePreprocessing) -> None:
        self.spec = spec
        std = np.asarray(spec.std, dtype=np.float32)
        # (pixel / 255 - mean) / std as pixel * scale + offset, per channel.
        self._scale = (1.0 / (255.0 * std)).astype(np.float32)
        self._offset = (-np.asarray(spec.mean, dtype=np.float32) / std).astype(np.float32)

    def __call__(self, source: ImageInput, out: np.ndarray | None = None) -> np.ndarray:
        """``out``: where to write the (C, H, W) result, e.g. a row of the batch."""
        image = self.resize_only(self._as_pixels(source))
        pixels = np.asarray(image.crop(self._crop_box(*image.size)))
        if out is None:
            out = np.empty((3, *self.spec.crop), dtype=np.float32)
        for channel, (scale, offset) in enumerate(zip(self._scale, self._offset, strict=True)):
            plane = pixels if pixels.ndim == 2 else pixels[:, :, channel]
            np.multiply(plane, scale, out=out[channel])
            out[channel] += offset
        return out

    def resize_only(self, image: Image.Image) -> Image.Image:
        """The first step alone (shorter side to ``resize``); at that size again it is a copy."""
        return image.resize(self._resized_size(*image.size), _PIL_FILTERS[self.spec.interpolation])

    def batch(self, sources: Sequence[ImageInput]) -> np.ndarray:
        """(N, C, H, W), C-contiguous: engines copy strided inputs element by element."""
        out = np.empty((len(sources), 3, *self.spec.crop), dtype=np.float32)
        for source, row in zip(sources, out, strict=True):
            self(source, out=row)
        return out

    def seen_region(self, source: ImageInput) -> Image.Image:
        """The part of ``source`` the model sees (its crop), in RGB at the source's own
        resolution: where a defect map belongs."""
        image = self._as_pixels(source).convert("RGB")
        scale = self.spec.resize / min(image.size)
        box = self._crop_box(*self._resized_size(*image.size))
        left, top, right, bottom = (round(v / scale) for v in box)
        return image.crop((left, top, right, bottom))

    @staticmethod
    def _as_pixels(source: ImageInput) -> Image.Image:
        """An 8-bit "L" (grey) or "RGB" image."""
        if isinstance(source, Image.Image):
            return to_8bit(source)
        if isinstance(source, np.ndarray):
            if source.dtype != np.uint8 or source.ndim not in (2, 3):
                raise ValueError("array images must be uint8 (H, W) or (H, W, C)")
            check_image_size("<array>", source.shape[1], source.shape[0])
            return to_8bit(Image.fromarray(source))
        return decode_pixels(source)

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

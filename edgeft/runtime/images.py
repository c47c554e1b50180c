"""Decoding any common image into 8-bit pixels, the same way on the build side and the edge box."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from edgeft.errors import EdgeftError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
# Checked on the header, before any pixel is decoded: a 138-byte PNG can declare 20000 x 1 pixels,
# which the shorter-side resize would blow up to 256 x 5,120,000.
MAX_PIXELS = 40_000_000
MAX_ASPECT = 20.0


class ImageDecodeError(EdgeftError):
    """An image that cannot be decoded: corrupt, truncated, empty or not an image at all."""


def decode_image(source: str | Path | bytes) -> Image.Image:
    """Open ``source`` fully (so truncation shows now, not later) as an RGB image.

    Grayscale, 16-bit, palette and RGBA images become 3-channel RGB; EXIF rotation is applied.
    """
    return decode_pixels(source).convert("RGB")


def decode_pixels(source: str | Path | bytes) -> Image.Image:
    """``decode_image`` that keeps one-channel sources as 8-bit grey ("L").

    Grey widened to RGB is three equal channels, so the runtime resizes the grey image and widens
    it afterwards: the same pixels for a third of the resampling work.
    """
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    if isinstance(source, bytes) and not source:
        raise ImageDecodeError(f"{name}: empty image data")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            handle = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
            with handle, Image.open(handle) as image:
                check_image_size(name, *image.size)
                image.load()
                return to_8bit(ImageOps.exif_transpose(image))
    except FileNotFoundError as exc:
        raise ImageDecodeError(f"{name}: no such file") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(f"{name}: not a readable image ({exc})") from exc
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(
            f"{name}: image over the limit of what decodes safely ({exc})"
        ) from exc


def check_image_size(name: str, width: int, height: int) -> None:
    """Refuse images too large to decode safely on a small box, or too thin to resize."""
    if width < 1 or height < 1:
        raise ImageDecodeError(f"{name}: image has no pixels ({width} x {height})")
    if width * height > MAX_PIXELS:
        raise ImageDecodeError(
            f"{name}: {width} x {height} pixels is over the limit of {MAX_PIXELS:,}"
        )
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ImageDecodeError(
            f"{name}: {width} x {height} is thinner than the limit of 1:{MAX_ASPECT:g}"
        )


def to_8bit(image: Image.Image) -> Image.Image:
    """ "L" for grey sources (16-bit scaled down to 8), "RGB" for everything else."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") else max(float(wide.max()), 1.0)
        return Image.fromarray(np.clip(wide / peak * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return image if image.mode in ("L", "RGB") else image.convert("RGB")

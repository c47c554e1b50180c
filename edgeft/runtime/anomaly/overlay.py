"""A defect map drawn over the part, as an operator looks at it: the image the model saw (the
preprocessing's crop, at the source's own resolution) with the map as a heat layer whose opacity
grows with the score, and the region above the threshold outlined."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from edgeft.runtime.preprocess import ImageInput, ImagePreprocessor

# Heat colours from cold to hot (blue, cyan, yellow, red), interpolated per pixel.
_STOPS = np.array([[0, 0, 255], [0, 255, 255], [255, 255, 0], [255, 0, 0]], dtype=np.float32)


def _heat(values: np.ndarray) -> np.ndarray:
    position = np.clip(values, 0.0, 1.0) * (len(_STOPS) - 1)
    low = np.minimum(position.astype(int), len(_STOPS) - 2)
    fraction = (position - low)[..., None]
    return _STOPS[low] * (1 - fraction) + _STOPS[low + 1] * fraction


def overlay_image(
    source: ImageInput, defect_map: np.ndarray, threshold: float, prepare: ImagePreprocessor
) -> Image.Image:
    """``source`` cropped as the model saw it, with ``defect_map`` (normalised, [H, W]) over it."""
    view = prepare.seen_region(source)
    values = np.asarray(
        Image.fromarray(defect_map.astype(np.float32), mode="F").resize(
            view.size, Image.Resampling.BILINEAR
        )
    )
    alpha = (np.clip(values, 0.0, 1.0) ** 2 * 0.7)[..., None]
    blended = np.asarray(view, dtype=np.float32) * (1 - alpha) + _heat(values) * alpha
    picture = Image.fromarray(blended.astype(np.uint8))
    above = Image.fromarray(((values > threshold) * 255).astype(np.uint8))
    outline = np.asarray(above.filter(ImageFilter.FIND_EDGES)) > 0
    pixels = np.asarray(picture).copy()
    pixels[outline] = (255, 255, 255)
    return Image.fromarray(pixels)


def overlay_png(
    source: ImageInput, defect_map: np.ndarray, threshold: float, prepare: ImagePreprocessor
) -> bytes:
    buffer = io.BytesIO()
    overlay_image(source, defect_map, threshold, prepare).save(buffer, format="PNG")
    return buffer.getvalue()

"""A few numbers per input that move when the line changes, computed as the model sees it.

Images: brightness, contrast and sharpness of the preprocessed (resized, cropped) image, so the
reference (the validation split at export) and the box (any upload, any tensor) are measured the
same way; width and height of the original where the server had it (a camera swap shows there
first). Texts: characters, tokens and the share of unknown tokens (new vocabulary).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from edgeft.bundle import ImagePreprocessing

IMAGE_STATISTICS = ("brightness", "contrast", "sharpness", "width", "height")
TEXT_STATISTICS = ("characters", "tokens", "unknown_rate")

Statistics = dict[str, np.ndarray]  # name -> one value per item (NaN where unknown)


def image_statistics(
    pixels: np.ndarray, spec: ImagePreprocessing, items: Sequence[Any] | None = None
) -> Statistics:
    """``pixels``: the model input (N, 3, H, W), normalised; ``items``: the originals (paths,
    bytes, PIL images or uint8 arrays) for their size, None when only tensors arrived."""
    mean = np.asarray(spec.mean, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(spec.std, dtype=np.float32).reshape(1, 3, 1, 1)
    grey = (pixels * std + mean).mean(axis=1)  # (N, H, W) in [0, 1]
    laplacian = (
        grey[:, 1:-1, :-2] + grey[:, 1:-1, 2:] + grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1]
    ) - 4.0 * grey[:, 1:-1, 1:-1]
    sizes = np.array([_size(item) for item in items] if items else [(np.nan, np.nan)] * len(grey))
    return {
        "brightness": grey.mean(axis=(1, 2)),
        "contrast": grey.std(axis=(1, 2)),
        "sharpness": laplacian.var(axis=(1, 2)),
        "width": sizes[:, 0].astype(np.float64),
        "height": sizes[:, 1].astype(np.float64),
    }


def text_statistics(
    inputs: Mapping[str, np.ndarray], unknown_id: int | None, texts: Sequence[str] | None = None
) -> Statistics:
    """``inputs``: the token ids and attention mask; ``texts``: the strings, when they arrived
    as strings (characters unknown otherwise)."""
    mask = inputs["attention_mask"].astype(bool)
    tokens = mask.sum(axis=1).astype(np.float64)
    if unknown_id is None:
        unknown = np.full(len(tokens), np.nan)
    else:
        unknown = ((inputs["input_ids"] == unknown_id) & mask).sum(axis=1) / np.maximum(tokens, 1)
    characters = (
        np.array([len(t) for t in texts], dtype=np.float64)
        if texts is not None
        else np.full(len(tokens), np.nan)
    )
    return {"characters": characters, "tokens": tokens, "unknown_rate": unknown}


def _size(item: Any) -> tuple[float, float]:
    """Width and height from the header alone (paths and bytes are not decoded again)."""
    if isinstance(item, Image.Image):
        return item.size
    if isinstance(item, np.ndarray):
        return float(item.shape[1]), float(item.shape[0])
    try:
        source = io.BytesIO(item) if isinstance(item, bytes) else item
        with Image.open(source) as image:
            return image.size
    except (OSError, ValueError, TypeError):
        return np.nan, np.nan

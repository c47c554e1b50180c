"""The defect map at the model input's size: the patch grid upsampled (bilinear, as torch's
``interpolate`` with ``align_corners=False``) and smoothed by a Gaussian, as PatchCore does it.
Both steps are linear and separable, so they are two small matrices per axis, made once per
grid size: ``map = A @ grid @ B.T``."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def _bilinear(source: int, target: int) -> np.ndarray:
    """``[target, source]`` weights of half-pixel bilinear resampling, edges clamped."""
    position = np.maximum((np.arange(target) + 0.5) * source / target - 0.5, 0.0)
    low = np.minimum(np.floor(position).astype(int), source - 1)
    high = np.minimum(low + 1, source - 1)
    fraction = position - low
    weights = np.zeros((target, source))
    weights[np.arange(target), low] += 1.0 - fraction
    weights[np.arange(target), high] += fraction
    return weights


def _gaussian(size: int, sigma: float) -> np.ndarray:
    """``[size, size]`` Gaussian smoothing with reflected edges (kernel radius 4 sigma)."""
    if sigma <= 0:
        return np.eye(size)
    radius = min(int(4 * sigma + 0.5), size - 1)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    weights = np.zeros((size, size))
    for row in range(size):
        columns = row + offsets
        columns = np.abs(columns)  # reflect at 0: -1 -> 1
        columns = np.where(columns > size - 1, 2 * (size - 1) - columns, columns)
        np.add.at(weights[row], columns, kernel)
    return weights


@lru_cache(maxsize=8)
def _axis(source: int, target: int, sigma: float) -> np.ndarray:
    return (_gaussian(target, sigma) @ _bilinear(source, target)).astype(np.float32)


def defect_maps(grids: np.ndarray, size: tuple[int, int], sigma: float) -> np.ndarray:
    """Patch grids ``[N, h, w]`` -> smoothed maps ``[N, H, W]`` at ``size`` (H, W)."""
    rows = _axis(grids.shape[1], size[0], sigma)
    columns = _axis(grids.shape[2], size[1], sigma)
    return np.einsum("Hh,nhw,Ww->nHW", rows, grids.astype(np.float32), columns, optimize=True)

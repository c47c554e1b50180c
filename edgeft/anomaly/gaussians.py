"""Fitting the per-position Gaussians (``edgeft.runtime.anomaly.gaussians``) on good parts."""

from __future__ import annotations

import numpy as np
import torch

from edgeft.runtime.anomaly.gaussians import PositionGaussians

RIDGE = 0.01  # added to each covariance's diagonal, as PaDiM does: a few hundred parts
# cannot pin down every direction of a 64-channel covariance


def fit_gaussians(patches: np.ndarray, channels: int, seed: int = 0) -> PositionGaussians:
    """The Gaussians of good patch features ``[N, h, w, C]`` over ``channels`` channels drawn
    with ``seed`` (all of them when ``channels`` >= C)."""
    n, h, w, width = patches.shape
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(width, min(channels, width), replace=False))
    x = torch.from_numpy(np.ascontiguousarray(patches[..., chosen]))
    mean = x.mean(dim=0)
    centred = (x - mean).reshape(n, h * w, len(chosen)).transpose(0, 1)  # [P, N, d]
    covariance = (centred.transpose(1, 2) @ centred).double() / max(n - 1, 1)
    covariance += RIDGE * torch.eye(len(chosen), dtype=torch.float64)
    precision = torch.linalg.inv(covariance).reshape(h, w, len(chosen), len(chosen))
    return PositionGaussians(chosen.astype(np.int64), mean.numpy(), precision.float().numpy())

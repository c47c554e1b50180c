"""Fitting the per-position Gaussians (``edgeft.runtime.anomaly.gaussians``) on good parts."""

from __future__ import annotations

import numpy as np
import torch

from edgeft.runtime.anomaly.gaussians import PositionGaussians, pooled

RIDGE = 0.01  # added to each covariance's diagonal, as PaDiM does: a few hundred parts
# cannot pin down every direction of a 64-channel covariance


def fit_gaussians(
    patches: np.ndarray,
    channels: int,
    seed: int = 0,
    pool: int = 1,
    groups: np.ndarray | None = None,
) -> PositionGaussians:
    """The Gaussians of good patch features ``[N, h, w, C]`` over ``channels`` channels drawn
    with ``seed`` (all of them when ``channels`` >= C), on the grid pooled by ``pool``; one set
    per variant where ``groups`` gives each image's (an index)."""
    width = patches.shape[-1]
    chosen = np.sort(np.random.default_rng(seed).choice(width, min(channels, width), replace=False))
    owners = np.zeros(len(patches), dtype=np.int64) if groups is None else groups
    selected = pooled(patches[..., chosen], pool)  # one copy of the channels used, pooled once
    means, precisions = [], []
    for g in range(int(owners.max()) + 1):
        x = torch.from_numpy(np.ascontiguousarray(selected[owners == g]))
        n, h, w, d = x.shape
        mean = x.mean(dim=0)
        centred = (x - mean).reshape(n, h * w, d).transpose(0, 1)  # [P, N, d]
        covariance = (centred.transpose(1, 2) @ centred).double() / max(n - 1, 1)
        covariance += RIDGE * torch.eye(d, dtype=torch.float64)
        means.append(mean.numpy())
        precisions.append(torch.linalg.inv(covariance).reshape(h, w, d, d).float().numpy())
    return PositionGaussians(chosen.astype(np.int64), np.stack(means), np.stack(precisions), pool)

"""Per-position Gaussians (PaDiM, Defard et al. 2021): at each grid position, the mean and the
inverse covariance of good parts' patch features over a few fixed channels. A patch's
Mahalanobis distance says how unusual it is *for that place* of the part, which a nearest
neighbour over all positions cannot (a crack-like edge is normal at a cell's busbar, not
between them). The grid may be averaged over ``pool`` x ``pool`` patches first (fewer, steadier
Gaussians: on ELPV 4x4 pooling scores better than the full grid, at a sixteenth of the size),
and each variant of a part (``--group-by``) has its own. numpy only: the box computes it after
the feature network."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def pooled(patches: np.ndarray, pool: int) -> np.ndarray:
    """``[N, h, w, C]`` averaged over ``pool`` x ``pool`` blocks (a remainder is dropped)."""
    if pool == 1:
        return patches
    n, h, w, c = patches.shape
    rows, columns = h // pool, w // pool
    blocks = patches[:, : rows * pool, : columns * pool].reshape(n, rows, pool, columns, pool, c)
    return blocks.mean(axis=(2, 4))


@dataclass(frozen=True)
class PositionGaussians:
    """``channels`` ``[d]`` of the patch features; per variant ``mean`` ``[G, h, w, d]`` and
    ``precision`` (the inverse covariance) ``[G, h, w, d, d]`` on the grid pooled by ``pool``."""

    channels: np.ndarray
    mean: np.ndarray
    precision: np.ndarray
    pool: int = 1

    def distances(self, patches: np.ndarray, group: np.ndarray | None = None) -> np.ndarray:
        """Patch features ``[N, h, w, C]`` and each image's variant -> Mahalanobis distances
        ``[N, h', w']`` on the pooled grid."""
        x = pooled(patches[..., self.channels], self.pool)
        n, h, w, d = x.shape
        if self.mean.shape[1:] != (h, w, d):
            raise ValueError(f"features pool to {h}x{w}x{d}; the Gaussians are {self.mean.shape}")
        group = np.zeros(n, dtype=np.int64) if group is None else np.asarray(group)
        out = np.empty((n, h, w), dtype=np.float32)
        for g in np.unique(group):
            rows = group == g
            centred = (x[rows] - self.mean[g]).astype(np.float32)
            by_position = centred.reshape(-1, h * w, d).transpose(1, 0, 2)  # [P, n_g, d]
            projected = by_position @ self.precision[g].reshape(h * w, d, d).astype(np.float32)
            squared = np.einsum("pni,pni->pn", projected, by_position)
            out[rows] = np.sqrt(np.maximum(squared, 0.0)).T.reshape(-1, h, w)
        return out

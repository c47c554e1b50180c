"""Per-position Gaussians (PaDiM, Defard et al. 2021): at each grid position, the mean and the
inverse covariance of good parts' patch features over a few fixed channels. A patch's
Mahalanobis distance says how unusual it is *for that place* of the part, which a nearest
neighbour over all positions cannot (a crack-like edge is normal at a cell's busbar, not
between them). numpy only: the box computes it after the feature network."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PositionGaussians:
    """``channels`` ``[d]`` of the patch features; ``mean`` ``[h, w, d]``; ``precision`` (the
    inverse covariance) ``[h, w, d, d]``."""

    channels: np.ndarray
    mean: np.ndarray
    precision: np.ndarray

    def distances(self, patches: np.ndarray) -> np.ndarray:
        """Patch features ``[N, h, w, C]`` -> Mahalanobis distances ``[N, h, w]``."""
        n, h, w, _ = patches.shape
        d = len(self.channels)
        if self.mean.shape != (h, w, d):
            raise ValueError(f"features on a {h}x{w} grid; the Gaussians are {self.mean.shape}")
        centred = (patches[..., self.channels] - self.mean).astype(np.float32)
        by_position = centred.reshape(n, h * w, d).transpose(1, 0, 2)  # [P, N, d]
        projected = by_position @ self.precision.reshape(h * w, d, d).astype(np.float32)
        squared = np.einsum("pni,pni->pn", projected, by_position)
        return np.sqrt(np.maximum(squared, 0.0)).T.reshape(n, h, w)

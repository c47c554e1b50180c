"""Distances -> the normalised anomaly score and the verdict, as ``AnomalySpec`` defines them
(see ``edgeft.bundle.anomaly_spec``: z-scores on good parts, combined, then a logistic that
puts the fitted threshold at 0.5)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgeft.bundle.anomaly_spec import AnomalySpec, ScoreScale


def _z(distances: np.ndarray, scales: Sequence[ScoreScale], group: np.ndarray) -> np.ndarray:
    centre = np.array([s.centre for s in scales])[group]
    spread = np.array([s.spread for s in scales])[group]
    return (np.asarray(distances, dtype=np.float64) - centre) / spread


def raw_scores(
    spec: AnomalySpec, patch: np.ndarray, embedding: np.ndarray, group: np.ndarray | None = None
) -> np.ndarray:
    """The combined raw score (in good-part spreads) of each image: what AUROC ranks. With
    ``spec.groups``, ``group`` gives each image's (the index of its nearest good image's)."""
    if spec.groups:
        if group is None:
            raise ValueError("a grouped spec scores each image in its group's units: give group")
        patch_scales = [g.patch_scale for g in spec.groups]
        embedding_scales = [g.embedding_scale for g in spec.groups]
    else:
        group = np.zeros(len(patch), dtype=np.int64)
        patch_scales, embedding_scales = [spec.patch_scale], [spec.embedding_scale]
    if spec.scoring == "patch":
        return _z(patch, patch_scales, group)
    if spec.scoring == "embedding":
        return _z(embedding, embedding_scales, group)
    return (_z(patch, patch_scales, group) + _z(embedding, embedding_scales, group)) / 2


def normalise(spec: AnomalySpec, raw: np.ndarray) -> np.ndarray:
    """Raw scores -> (0, 1), the fitted threshold at 0.5 (float64 keeps the top end ranked)."""
    scaled = (np.asarray(raw, dtype=np.float64) - spec.normaliser.centre) / spec.normaliser.spread
    return 1.0 / (1.0 + np.exp(-np.clip(scaled, -700.0, 700.0)))


def raw_at_threshold(spec: AnomalySpec) -> float:
    """The raw score the threshold stands for (``normalise``'s inverse at it)."""
    t = spec.threshold
    return spec.normaliser.centre + spec.normaliser.spread * float(np.log(t / (1 - t)))


def normalise_map(spec: AnomalySpec, maps: np.ndarray) -> np.ndarray:
    """Patch-distance maps -> (0, 1): a pixel at 0.5 is as far from the good parts as the worst
    patch of an image at the threshold; the slope is the spread of single patches on good
    parts (wider than that of an image's worst patch, so a map shows more than on and off)."""
    at_threshold = spec.patch_scale.centre + spec.patch_scale.spread * spec.normaliser.centre
    scaled = (np.asarray(maps, dtype=np.float64) - at_threshold) / spec.map_spread
    return (1.0 / (1.0 + np.exp(-np.clip(scaled, -700.0, 700.0)))).astype(np.float32)

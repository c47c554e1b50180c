"""Distances -> the normalised anomaly score and the verdict, as ``AnomalySpec`` defines them
(see ``edgeft.bundle.anomaly_spec``: z-scores on good parts, combined, then a logistic that
puts the fitted threshold at 0.5)."""

from __future__ import annotations

import numpy as np

from edgeft.bundle.anomaly_spec import AnomalySpec, ScoreScale


def _z(distances: np.ndarray, scale: ScoreScale) -> np.ndarray:
    return (np.asarray(distances, dtype=np.float64) - scale.centre) / scale.spread


def raw_scores(spec: AnomalySpec, patch: np.ndarray, embedding: np.ndarray) -> np.ndarray:
    """The combined raw score (in good-part spreads) of each image: what AUROC ranks."""
    if spec.scoring == "patch":
        return _z(patch, spec.patch_scale)
    if spec.scoring == "embedding":
        return _z(embedding, spec.embedding_scale)
    return (_z(patch, spec.patch_scale) + _z(embedding, spec.embedding_scale)) / 2


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

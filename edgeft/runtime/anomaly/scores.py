"""Distances -> the normalised anomaly score and the verdict, as ``AnomalySpec`` defines them
(see ``edgeft.bundle.anomaly_spec``: z-scores on good parts, combined, then a logistic that
puts the fitted threshold at 0.5)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeft.bundle.anomaly_spec import PARTS, AnomalySpec, ScoreScale


@dataclass(frozen=True)
class ImageDistances:
    """Each image's distances: its worst patch's to the bank, its embedding's to the nearest
    good image, its worst position's to the Gaussians (where fitted), and the variant of its
    nearest good image (an index; where the spec has ``groups``)."""

    patch: np.ndarray
    embedding: np.ndarray
    gaussian: np.ndarray | None = None
    group: np.ndarray | None = None


def _scales(spec: AnomalySpec, part: str) -> list[ScoreScale]:
    """One part's scale per variant (one, without variants)."""
    field = f"{part}_scale"
    scales = [getattr(g, field) for g in spec.groups] if spec.groups else [getattr(spec, field)]
    if any(s is None for s in scales):
        raise ValueError(f"the spec has no {field}")
    return scales


def raw_scores(spec: AnomalySpec, distances: ImageDistances) -> np.ndarray:
    """The combined raw score (in good-part spreads) of each image: what AUROC ranks."""
    if spec.groups and distances.group is None:
        raise ValueError("a spec with variants scales each image by its variant: give group")
    group = (
        np.zeros(len(distances.patch), dtype=np.int64)
        if distances.group is None
        else distances.group
    )
    parts = []
    for part in PARTS[spec.scoring]:
        scales = _scales(spec, part)
        centre = np.array([s.centre for s in scales])[group]
        spread = np.array([s.spread for s in scales])[group]
        values = getattr(distances, part)
        if values is None:
            raise ValueError(f"scoring {spec.scoring} needs each image's {part} distance")
        parts.append((np.asarray(values, dtype=np.float64) - centre) / spread)
    return np.mean(parts, axis=0)


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

"""Image AUROC in numpy alone, so the box (``validate``) and the build side (``eval``,
``quantize``) rank scores with one function."""

from __future__ import annotations

import numpy as np

from edgeft.errors import EdgeftError


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The chance that a positive (defective) item scores above a negative one, ties halved
    (the Mann-Whitney U statistic over both counts, from average ranks)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positive = np.asarray(positive, dtype=bool).ravel()
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise EdgeftError("AUROC needs both defective and good items")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]  # ties share their mean rank
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))

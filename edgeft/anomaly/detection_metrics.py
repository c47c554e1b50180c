"""How well anomaly scores separate defective from good, as MVTec AD reports it: image AUROC,
pixel AUROC and PRO (per-region overlap, so a small defect counts as much as a large one), and
the two ways a threshold is chosen on validation. numpy and scipy only."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from edgeft.errors import EdgeftError
from edgeft.runtime.anomaly.ranking import auroc

__all__ = ["auroc", "f1_best_threshold", "pixel_auroc", "pro_auc"]


def pixel_auroc(maps: np.ndarray, masks: np.ndarray) -> float:
    """AUROC over every pixel of every image (masks: True where the defect is)."""
    return auroc(np.asarray(maps).ravel(), np.asarray(masks, dtype=bool).ravel())


def pro_auc(maps: np.ndarray, masks: np.ndarray, max_fpr: float = 0.3, steps: int = 200) -> float:
    """Area under the per-region-overlap curve up to ``max_fpr`` false-positive pixels, divided
    by ``max_fpr`` (Bergmann et al.): each connected defect region's share of pixels above the
    threshold, averaged over regions, as the threshold sweeps."""
    maps, masks = np.asarray(maps, dtype=np.float64), np.asarray(masks, dtype=bool)
    regions = []
    for index, mask in enumerate(masks):
        labelled, count = ndimage.label(mask)
        regions += [(index, labelled == r) for r in range(1, count + 1)]
    if not regions or masks.all():
        raise EdgeftError("PRO needs defect regions and good pixels")
    good = maps[~masks]
    thresholds = np.quantile(good, np.linspace(1.0, 1.0 - max_fpr, steps))
    fpr, pro = [], []
    for t in thresholds:
        fpr.append(float((good > t).mean()))
        pro.append(float(np.mean([(maps[i][region] > t).mean() for i, region in regions])))
    return float(np.trapezoid(pro, fpr) / max_fpr)


def f1_best_threshold(scores: np.ndarray, defective: np.ndarray) -> float:
    """The threshold with the best F1 for flagging defects (labelled defects in validation):
    midway between the scores on either side of the best cut."""
    scores, defective = np.asarray(scores, dtype=np.float64), np.asarray(defective, dtype=bool)
    order = np.argsort(-scores)
    ranked, hits = scores[order], defective[order]
    true_pos = np.cumsum(hits)
    flagged = np.arange(1, len(scores) + 1)
    f1 = 2 * true_pos / (flagged + defective.sum())
    # only cut between distinct scores: items with the same score are flagged together
    distinct = np.append(ranked[:-1] > ranked[1:], True)
    best = int(np.argmax(np.where(distinct, f1, -1.0)))
    below = ranked[best + 1] if best + 1 < len(ranked) else ranked[best] - 1.0
    return float((ranked[best] + below) / 2)

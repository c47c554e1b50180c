"""Label-free accuracy: confidence-based performance estimation (NannyML's CBPE), numpy only.

On the box labels arrive late or never; with calibrated probabilities the top probability is
the chance that the prediction is right, so their mean is the expected accuracy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgeft.errors import EdgeftError

SIGMAS = 3.0


@dataclass(frozen=True)
class AccuracyEstimate:
    """Expected accuracy of a window and the band its realized accuracy should fall in."""

    value: float
    low: float
    high: float
    items: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _check_probabilities(probabilities: np.ndarray) -> np.ndarray:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] == 0 or probabilities.shape[1] < 2:
        raise EdgeftError(
            f"expected probabilities of shape (items, classes) with items >= 1 and classes >= 2, "
            f"got {probabilities.shape}"
        )
    return probabilities


def estimate_accuracy(probabilities: np.ndarray) -> AccuracyEstimate:
    """Mean top probability, with a ±3 sigma interval for the window's realized accuracy.

    The predicted class is the argmax, so item i is right with probability p_i = max p. If items
    are right independently, the number right is Poisson-binomial: the realized accuracy has
    mean sum p_i / N and variance sum p_i (1 - p_i) / N². Three standard deviations is NannyML's
    threshold convention; the interval is clipped to [0, 1] as accuracy is.
    """
    probabilities = _check_probabilities(probabilities)
    top = probabilities.max(axis=1)
    items = len(top)
    value = float(top.mean())
    spread = SIGMAS * float(np.sqrt(np.sum(top * (1.0 - top)))) / items
    return AccuracyEstimate(
        value=value,
        low=max(0.0, value - spread),
        high=min(1.0, value + spread),
        items=items,
    )


def realized_accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The fraction of items whose argmax is the label (once labels are known)."""
    probabilities = _check_probabilities(probabilities)
    labels = np.asarray(labels)
    if labels.shape != (probabilities.shape[0],):
        raise EdgeftError(
            f"expected {probabilities.shape[0]} labels (one per item), "
            f"got labels of shape {labels.shape}"
        )
    return float(np.mean(probabilities.argmax(axis=1) == labels))

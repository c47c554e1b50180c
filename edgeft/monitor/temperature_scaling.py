"""Temperature scaling (Guo et al. 2017): one scalar that makes a model's confidences honest.

Label-free accuracy estimation (``cbpe``) trusts the top probability as the chance of being
right, which only holds for calibrated probabilities; a single temperature fitted on the
labelled validation split is the cheapest fix that keeps the predicted class unchanged.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from edgeft.errors import EdgeftError

TEMPERATURE_RANGE = (0.05, 20.0)


def _check_labelled(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] < 2:
        raise EdgeftError(
            f"expected scores of shape (items, classes) with items >= 1 and classes >= 2, "
            f"got {scores.shape}"
        )
    if labels.shape != (scores.shape[0],):
        raise EdgeftError(
            f"expected {scores.shape[0]} labels (one per item), got labels of shape {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise EdgeftError(f"labels must be class indices (integers), got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise EdgeftError(
            f"labels must lie in [0, {scores.shape[1] - 1}], got {labels.min()}..{labels.max()}"
        )
    return scores, labels


def _check_temperature(temperature: float) -> float:
    if not np.isfinite(temperature) or temperature <= 0:
        raise EdgeftError(f"temperature must be a positive number, got {temperature}")
    return float(temperature)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T minimising the mean negative log-likelihood of softmax(logits / T) on ``labels``.

    Searched over log T (the loss is far better conditioned there) within [0.05, 20]: beyond
    those a model is either useless or the validation split is too small to say.
    """
    logits, labels = _check_labelled(logits, labels)
    rows = np.arange(len(labels))

    def nll(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=1)[rows, labels].mean())

    low, high = np.log(TEMPERATURE_RANGE)
    result = minimize_scalar(nll, bounds=(low, high), method="bounded")
    return float(np.exp(result.x))


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T), computed stably (scipy shifts by the row maximum)."""
    temperature = _check_temperature(temperature)
    return softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=-1)


def recalibrate(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Calibrated probabilities from already-softmaxed ones, as a prediction log stores them.

    log(softmax(z)) = z - logsumexp(z) differs from the logits z only by a per-row constant,
    and softmax is shift invariant, so softmax(log(p) / T) = softmax(z / T): no logits needed.
    Clipping at 1e-12 keeps a probability that underflowed to 0 finite.
    """
    logs = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, None))
    return apply_temperature(logs, temperature)


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = 15
) -> float:
    """Top-label ECE: the item-weighted mean |accuracy - confidence| over equal-width bins.

    Per bin, n_b * |accuracy_b - confidence_b| = |sum of (correct - confidence)| over its items.
    """
    probabilities, labels = _check_labelled(probabilities, labels)
    if bins < 1:
        raise EdgeftError(f"bins must be at least 1, got {bins}")
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gap = np.bincount(which, weights=correct - confidence, minlength=bins)
    return float(np.abs(gap).sum() / len(labels))

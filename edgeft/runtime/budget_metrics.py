"""The metric an accuracy budget holds, and the paired bootstrap interval of a drop in it.

Both sides use it: ``quantize`` holds an int8 model to the budget on the validation split, and
``validate`` holds it again on the box. The drop is a paired comparison (fp32 and int8 on the
same items), so its interval is far narrower than two separate accuracies' intervals would be.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeft.errors import EdgeftError
from edgeft.runtime.classification_metrics import classification_metrics

METRICS = ("accuracy", "macro-f1", "recall:CLASS")
RESAMPLES = 2000
SEED = 0


def check_metric(metric: str, classes: Sequence[str]) -> str:
    """``metric`` if it names a known metric (and, for ``recall:CLASS``, one of ``classes``)."""
    if metric in ("accuracy", "macro-f1"):
        return metric
    name = metric.removeprefix("recall:")
    if metric.startswith("recall:") and name in classes:
        return metric
    if metric.startswith("recall:"):
        raise EdgeftError(
            f"budget metric {metric!r}: no class {name!r} (classes: {', '.join(classes)})"
        )
    raise EdgeftError(f"unknown budget metric {metric!r}; choose {', '.join(METRICS)}")


def metric_value(scores: dict[str, Any], metric: str) -> float:
    """The metric (0..1) from ``classification_metrics`` scores."""
    if metric == "accuracy":
        return float(scores["accuracy"])
    if metric == "macro-f1":
        return float(scores["macro_f1"])
    return float(scores["per_class"][metric.removeprefix("recall:")]["recall"])


def _value(labels: np.ndarray, predicted: np.ndarray, classes: Sequence[str], metric: str) -> float:
    if metric == "accuracy":
        return float((labels == predicted).mean())
    return metric_value(classification_metrics(labels, predicted, classes), metric)


def bootstrap_draws(items: int, resamples: int = RESAMPLES) -> np.ndarray:
    """Seeded resampling indices (resamples, items): the same draws for every model compared."""
    return np.random.default_rng(SEED).integers(0, items, size=(resamples, items))


def accuracy_interval(hits: np.ndarray, resamples: int = RESAMPLES) -> tuple[float, float]:
    """95% bootstrap interval of the mean of per-item hits (0/1)."""
    samples = hits.astype(np.float64)[bootstrap_draws(len(hits), resamples)].mean(axis=1)
    low, high = np.percentile(samples, [2.5, 97.5])
    return float(low), float(high)


def drop_points(
    labels: np.ndarray,
    reference: np.ndarray,
    predicted: np.ndarray,
    classes: Sequence[str],
    metric: str = "accuracy",
) -> float:
    """``metric`` of ``reference`` minus that of ``predicted``, in points."""
    return 100.0 * (
        _value(labels, reference, classes, metric) - _value(labels, predicted, classes, metric)
    )


def resolves(items: int, max_drop: float) -> bool:
    """Whether ``items`` can resolve a ``max_drop``-point budget: one item is worth no more."""
    return 100.0 / max(items, 1) <= max_drop


def paired_drop(
    labels: np.ndarray,
    reference: np.ndarray,
    predicted: np.ndarray,
    classes: Sequence[str],
    metric: str = "accuracy",
    resamples: int = RESAMPLES,
) -> dict[str, float]:
    """The drop in points (reference minus predicted) with a 95% bootstrap interval from
    resampling the items, both models' answers on each item kept together."""
    point = drop_points(labels, reference, predicted, classes, metric)
    draws = bootstrap_draws(len(labels), resamples)
    if metric == "accuracy":  # vectorised: the mean of per-item differences
        diff = (labels == reference).astype(np.float64) - (labels == predicted)
        samples = 100.0 * diff[draws].mean(axis=1)
    else:
        samples = np.array(
            [drop_points(labels[d], reference[d], predicted[d], classes, metric) for d in draws]
        )
    low, high = np.percentile(samples, [2.5, 97.5])
    return {"drop": round(point, 3), "low": round(float(low), 3), "high": round(float(high), 3)}


def resolution_note(items: int, max_drop: float, interval: dict[str, float]) -> str | None:
    """Why ``items`` cannot settle a ``max_drop``-point budget, if they cannot."""
    if not resolves(items, max_drop):
        per_item = 100.0 / max(items, 1)
        needed = f" (about {int(np.ceil(100.0 / max_drop))} items would)" if max_drop > 0 else ""
        return (
            f"one of {items} items is {per_item:.2f} points, more than the {max_drop:.2f}-point "
            f"budget: the split cannot resolve it{needed}"
        )
    if interval["drop"] <= max_drop < interval["high"]:
        return (
            f"within budget on {items} items, but the drop's 95% interval reaches "
            f"{interval['high']:.2f} points: more labelled items would settle it"
        )
    return None

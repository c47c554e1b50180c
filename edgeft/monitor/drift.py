"""Drift figures whose alert bands are learned from the reference data (NannyML style).

A fixed p-value cut fires on any large enough window, because with many items every small,
harmless difference is "significant". Instead each figure is a distance, and its band is what
that same distance does on many windows of the analysed window's size drawn from the reference
itself: mean ± 3 standard deviations, NannyML's threshold. This is NannyML's chunked reference,
but sized to each window, so a small window gets the wider band its noise deserves.

The band is a two-sample bootstrap of the null hypothesis "this window comes from the reference
distribution": each draw compares a window resampled from the reference with an independent
resample of the whole reference, so the band carries the noise of both the window and the
reference (a small validation split is itself a noisy picture of the line).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from edgeft.errors import EdgeftError

MIN_WINDOW = 30
Sides = Literal["upper", "lower", "both"]
Status = Literal["ok", "alert", "too-small", "missing"]


@dataclass(frozen=True)
class Band:
    """Where a figure is expected to lie; None means no bound on that side."""

    low: float | None
    high: float | None

    def contains(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def to_dict(self) -> dict[str, float | None]:
        return {"low": self.low, "high": self.high}


def learned_band(
    figure: Callable[[np.ndarray], float],
    reference_size: int,
    window_size: int,
    sides: Sides,
    draws: int = 200,
    seed: int = 0,
    sigmas: float = 3.0,
) -> Band:
    """mean ± ``sigmas`` std of ``figure(indices)`` over ``draws`` reference windows.

    ``figure`` computes the figure on the reference rows ``indices``, drawn with replacement
    (a bootstrap), so a window as large as the reference still gets a spread. Only ``sides`` are bounded:
    distances only drift upward, an accuracy only downward.
    """
    if reference_size < 1 or window_size < 1:
        raise EdgeftError(
            f"cannot learn a band from {reference_size} reference rows for windows of {window_size}"
        )
    if draws < 2:
        raise EdgeftError(f"a band needs at least 2 draws to have a spread, got {draws}")
    rng = np.random.default_rng(seed)
    values = np.array(
        [figure(rng.integers(0, reference_size, size=window_size)) for _ in range(draws)],
        dtype=np.float64,
    )
    values = values[np.isfinite(values)]
    if len(values) < 2:
        raise EdgeftError("the figure is undefined on reference windows; no band can be learned")
    mean, spread = float(values.mean()), sigmas * float(values.std(ddof=1))
    return Band(
        low=mean - spread if sides in ("lower", "both") else None,
        high=mean + spread if sides in ("upper", "both") else None,
    )


@dataclass(frozen=True)
class DriftFigure:
    """One figure of one window: its value, its learned band and the verdict."""

    name: str
    value: float | None
    band: Band | None
    status: Status
    detail: str = ""

    @property
    def alert(self) -> bool:
        return self.status == "alert"

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "value": self.value,
            "band": None if self.band is None else self.band.to_dict(),
            "status": self.status,
            "detail": self.detail,
        }


def class_rate_distance(predicted: np.ndarray, reference_rates: np.ndarray) -> float:
    """Total variation distance between the window's predicted-class rates and the reference's.

    Half the L1 distance: the share of predictions that would have to change class to match.
    """
    predicted = np.asarray(predicted)
    reference_rates = np.asarray(reference_rates, dtype=np.float64)
    if predicted.ndim != 1 or len(predicted) == 0:
        raise EdgeftError(f"expected a non-empty 1-D array of classes, got shape {predicted.shape}")
    if predicted.min() < 0 or predicted.max() >= len(reference_rates):
        raise EdgeftError(
            f"predicted classes must lie in [0, {len(reference_rates) - 1}], "
            f"got {predicted.min()}..{predicted.max()}"
        )
    rates = np.bincount(predicted, minlength=len(reference_rates)) / len(predicted)
    return float(0.5 * np.abs(rates - reference_rates).sum())


def ks_distance(values: np.ndarray, reference: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic (largest CDF gap), NaNs dropped first.

    NaN when either side has no values left. Only the statistic is used, so the cheap
    asymptotic p-value method is asked for.
    """
    values = np.asarray(values, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    values, reference = values[~np.isnan(values)], reference[~np.isnan(reference)]
    if len(values) == 0 or len(reference) == 0:
        return float("nan")
    return float(stats.ks_2samp(values, reference, method="asymp").statistic)


@dataclass(frozen=True)
class EmbeddingReference:
    """The reference distribution of the model's pooled-feature sketch: mean and precision."""

    mean: np.ndarray
    inverse_covariance: np.ndarray

    @classmethod
    def fit(cls, reference_sketch: np.ndarray) -> EmbeddingReference:
        """Mean and (pseudo-)inverse covariance of the reference rows.

        A ridge of 1e-6 of the mean variance plus a pseudo-inverse keeps a singular covariance
        (more dimensions than rows, or a constant feature) usable.
        """
        sketch = np.asarray(reference_sketch, dtype=np.float64)
        if sketch.ndim != 2 or sketch.shape[0] < 2:
            raise EdgeftError(
                f"expected a reference sketch of shape (rows >= 2, dims), got {sketch.shape}"
            )
        covariance = np.atleast_2d(np.cov(sketch, rowvar=False))
        ridge = 1e-6 * max(float(np.trace(covariance)) / len(covariance), 1e-12)
        inverse = np.linalg.pinv(covariance + ridge * np.eye(len(covariance)), hermitian=True)
        return cls(mean=sketch.mean(axis=0), inverse_covariance=inverse)


def embedding_distance(
    sketch: np.ndarray, mean: np.ndarray, inverse_covariance: np.ndarray
) -> float:
    """Mean squared Mahalanobis distance of the window's rows to the reference distribution.

    About the number of dimensions for rows like the reference; a shift in any direction the
    features span, or a change of their correlations, raises it.
    """
    sketch = np.asarray(sketch, dtype=np.float64)
    if sketch.ndim != 2 or sketch.shape[0] == 0 or sketch.shape[1] != len(mean):
        raise EdgeftError(
            f"expected a sketch of shape (rows >= 1, {len(mean)}), got {sketch.shape}"
        )
    centred = sketch - mean
    return float(np.einsum("ij,jk,ik->i", centred, inverse_covariance, centred).mean())


def class_rate_shift(window: np.ndarray, reference: np.ndarray, classes: int) -> float:
    """``class_rate_distance`` between two arrays of predicted classes."""
    rates = np.bincount(np.asarray(reference), minlength=classes) / len(reference)
    return class_rate_distance(window, rates)


def embedding_shift(window: np.ndarray, reference: np.ndarray) -> float:
    """``embedding_distance`` of the window's sketch rows to the reference rows' distribution."""
    fitted = EmbeddingReference.fit(reference)
    return embedding_distance(window, fitted.mean, fitted.inverse_covariance)


def drift_figure(
    name: str,
    window_values: np.ndarray,
    reference_values: np.ndarray | None,
    figure_of: Callable[[np.ndarray, np.ndarray], float],
    sides: Sides,
    window_size_min: int = MIN_WINDOW,
    seed: int = 0,
    band_figure: Callable[[np.ndarray], float] | None = None,
    band: Band | None = None,
) -> DriftFigure:
    """The figure ``figure_of(window, reference)`` judged against a band learned on the reference.

    ``band_figure(indices)`` is the figure on the reference rows ``indices``; by default the
    same comparison against an independent resample of the reference,
    ``figure_of(reference_values[indices], reference_values[resampled])``, so ``figure_of``
    must derive what it compares with from its second argument. The kinds:

    - predicted class: values are predicted classes, ``figure_of=partial(class_rate_shift,
      classes=C)``, sides "upper";
    - a scalar input or output field: ``figure_of=ks_distance``, sides "upper";
    - the embedding sketch: values are sketch rows, ``figure_of=embedding_shift``, sides "upper";
    - estimated accuracy: values are calibrated probabilities (p the reference's, with
      labels y), ``figure_of=lambda w, _: estimate_accuracy(w).value``,
      ``band_figure=lambda i: realized_accuracy(p[i], y[i])``, sides "lower": the estimate
      is judged against what accuracy really did on labelled reference windows.

    ``band``, when given, is one learned before for this figure at this window size (the
    learning is most of the cost: a monitor reuses it across windows of equal size).

    A window under ``window_size_min`` items is "too-small" (its figure is too noisy to judge,
    never an alert); no reference values, or a figure undefined on the window, is "missing".
    """
    items = len(window_values)
    if items < window_size_min:
        return DriftFigure(
            name, None, None, "too-small", f"{items} items, fewer than {window_size_min}"
        )
    if reference_values is None or len(reference_values) == 0:
        return DriftFigure(name, None, None, "missing", "no reference values for this figure")
    value = float(figure_of(window_values, reference_values))
    if not np.isfinite(value):
        return DriftFigure(name, None, None, "missing", "the figure is undefined on this window")

    resample = np.random.default_rng(seed + 1)

    def on_reference(indices: np.ndarray) -> float:
        others = resample.integers(0, len(reference_values), size=len(reference_values))
        return figure_of(reference_values[indices], reference_values[others])

    if band is None:
        band = learned_band(
            band_figure or on_reference, len(reference_values), items, sides, seed=seed
        )
    status: Status = "ok" if band.contains(value) else "alert"
    return DriftFigure(name, value, band, status)

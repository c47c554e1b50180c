"""``edgeft monitor``: the prediction log, window by window, against the bundle's reference.

Per model version (never mixed: each has its own reference and behaviour) and per window (a
count of predictions, or a span of time): prediction-rate shift, confidence drift, each input
statistic's drift, embedding drift, the estimated accuracy (CBPE on calibrated probabilities)
and, where feedback arrived, the realized accuracy. Each figure's band is learned from the
reference at the window's size (``drift.drift_figure``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from edgeft.bundle import Bundle
from edgeft.bundle.reference_statistics import ReferenceStatistics
from edgeft.errors import EdgeftError, shown
from edgeft.monitor.cbpe import AccuracyEstimate, estimate_accuracy, realized_accuracy
from edgeft.monitor.drift import (
    Band,
    DriftFigure,
    Sides,
    class_rate_shift,
    drift_figure,
    embedding_shift,
    ks_distance,
)
from edgeft.monitor.prediction_log import LoggedVersion, read_log, read_notes
from edgeft.monitor.temperature_scaling import recalibrate

_SPAN_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
CONFIDENCE_DECIMALS = 4
# Figures about the inputs themselves (not the model's answers).
INPUT_FIGURES = ("input.", "embedding", "reconstruction_error")


@dataclass(frozen=True)
class Window:
    """``500``: windows of 500 predictions; ``1h`` (s, m, h, d): windows of that much time."""

    items: int | None = None
    seconds: float | None = None

    @classmethod
    def parse(cls, text: str) -> Window:
        text = text.strip()
        if text.isdigit() and int(text) > 0:
            return cls(items=int(text))
        match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text)
        if match and float(match[1]) > 0:
            return cls(seconds=float(match[1]) * _SPAN_UNITS[match[2]])
        raise EdgeftError(f"window {text!r}: give a count (500) or a span (30m, 1h, 1d)")

    def split(self, times: np.ndarray) -> Iterator[np.ndarray]:
        """Row indices of each window, oldest first (the last one may be partial)."""
        if self.items is not None:
            for start in range(0, len(times), self.items):
                yield np.arange(start, min(start + self.items, len(times)))
            return
        assert self.seconds is not None
        buckets = np.floor((times - times[0]) / self.seconds).astype(np.int64)
        for bucket in np.unique(buckets):
            yield np.flatnonzero(buckets == bucket)


@dataclass
class WindowReport:
    start: float
    end: float
    items: int
    figures: list[DriftFigure]
    estimate: AccuracyEstimate | None
    realized: float | None
    labelled: int

    @property
    def drifted(self) -> list[str]:
        return [f.name for f in self.figures if f.alert]

    @property
    def estimate_reliable(self) -> bool:
        """CBPE assumes the model stays calibrated: it holds while the inputs look like the
        reference. When they drifted, a model can be confidently wrong and the estimate says
        nothing (benchmarks/results/monitor_elpv.md measures how far off it gets)."""
        return not any(name.startswith(INPUT_FIGURES) for name in self.drifted)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "items": self.items,
            "drifted": self.drifted,
            "estimated_accuracy": None if self.estimate is None else self.estimate.to_dict(),
            "estimate_reliable": self.estimate_reliable,
            "realized_accuracy": self.realized,
            "labelled": self.labelled,
            "figures": [f.to_dict() for f in self.figures],
        }


@dataclass
class VersionReport:
    model: str
    version: str
    bundle: str | None  # the bundle folder it was analysed against; None: not analysed
    windows: list[WindowReport] = field(default_factory=list)
    skipped: str | None = None  # why this version was not analysed
    damaged: int = 0  # rows of the log skipped as unreadable (LoggedVersion.damaged)
    damage: list[str] = field(default_factory=list)  # what was wrong with the first few

    @property
    def drifted(self) -> bool:
        return any(w.drifted for w in self.windows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "bundle": self.bundle,
            "drifted": self.drifted,
            "skipped": self.skipped,
            "damaged_rows": self.damaged,
            "damage": self.damage,
            "windows": [w.to_dict() for w in self.windows],
        }


@dataclass
class MonitorReport:
    log: str
    window: str
    versions: list[VersionReport]
    notes: list[tuple[float, str]] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return any(v.drifted for v in self.versions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "log": self.log,
            "window": self.window,
            "drifted": self.drifted,
            "versions": [v.to_dict() for v in self.versions],
            "notes": [{"time": t, "note": n} for t, n in self.notes],
        }


def monitor_log(
    log: str | Path,
    bundles: Sequence[str | Path | Bundle],
    window: str = "500",
    since: float | None = None,
) -> MonitorReport:
    """Analyse every logged version whose bundle is among ``bundles`` (matched by content, so a
    copy or a repository version counts); versions of other bundles are listed, not mixed in."""
    windows = Window.parse(window)
    loaded = [b if isinstance(b, Bundle) else Bundle.load(b) for b in bundles]
    by_fingerprint = {b.fingerprint: b for b in loaded}
    versions = []
    for logged in read_log(log):
        bundle = by_fingerprint.get(logged.bundle)
        report = VersionReport(
            logged.model, logged.version, None, damaged=logged.damaged, damage=logged.damage
        )
        versions.append(report)
        if bundle is None:
            report.skipped = "logged by a bundle not given (pass it with --bundle)"
            continue
        if not len(logged):
            report.skipped = "no readable rows"
            continue
        analysis = VersionAnalysis(ReferenceStatistics.of(bundle), logged)
        report.bundle = str(bundle.root)
        for rows in windows.split(logged.times):
            if since is not None and logged.times[rows[-1]] < since:
                continue
            report.windows.append(analysis.window(rows))
    return MonitorReport(str(log), window, versions, read_notes(log))


class VersionAnalysis:
    """One version's log against its reference; bands are learned once per window size."""

    def __init__(self, reference: ReferenceStatistics, logged: LoggedVersion) -> None:
        title = f"{shown(logged.model)} version {shown(logged.version)}"
        if not len(logged):
            first = f" (first: {logged.damage[0]})" if logged.damage else ""
            raise EdgeftError(f"{title}: no readable rows, {logged.damaged} damaged{first}")
        if list(reference.labels) != list(logged.labels):
            raise EdgeftError(
                f"{title}: logged labels {shown(logged.labels)} differ "
                f"from the bundle's {shown(reference.labels)}"
            )
        if reference.embedding is not None and logged.embedding is not None:
            width, expected = logged.embedding.shape[1], reference.embedding.shape[1]
            if width != expected:
                raise EdgeftError(
                    f"{title}: logged embedding sketches hold {width} values, the bundle's "
                    f"reference {expected}: the log does not come from this bundle's graph"
                )
        self.reference, self.logged = reference, logged
        # The log holds probabilities as served; calibrate them as the reference was.
        self.probabilities = recalibrate(
            logged.probabilities, reference.temperature / logged.temperature
        )
        self._bands: dict[tuple[str, int], Band] = {}
        index = {name: i for i, name in enumerate(logged.labels)}
        self.truth = np.array([index.get(logged.feedback.get(i, ""), -1) for i in logged.ids])

    def window(self, rows: np.ndarray) -> WindowReport:
        reference, logged = self.reference, self.logged
        probabilities = self.probabilities[rows]
        figures = [
            self._figure(
                "prediction_rates",
                probabilities.argmax(axis=1),
                reference.probabilities.argmax(axis=1),
                partial(class_rate_shift, classes=len(reference.labels)),
                "upper",
            ),
            self._figure(
                "confidence",
                _confidence(probabilities),
                _confidence(reference.probabilities),
                ks_distance,
                "upper",
            ),
        ]
        for name, values in sorted(logged.statistics.items()):
            if name in reference.statistics and not np.isnan(values[rows]).all():
                figures.append(
                    self._figure(
                        f"input.{name}",
                        values[rows],
                        reference.statistics[name],
                        ks_distance,
                        "upper",
                    )
                )
        if reference.embedding is not None and logged.embedding is not None:
            # The sketch's last column is the reconstruction error (edgeft.export's graph).
            sketch, reference_sketch = logged.embedding[rows], reference.embedding
            figures += [
                # Both sides: features that collapse onto a corner of the reference's principal
                # subspace are as new as features far out in it.
                self._figure(
                    "embedding", sketch[:, :-1], reference_sketch[:, :-1], embedding_shift, "both"
                ),
                self._figure(
                    "reconstruction_error",
                    sketch[:, -1],
                    reference_sketch[:, -1],
                    lambda w, _: float(np.mean(w)),
                    "upper",
                ),
            ]
        estimate = estimate_accuracy(probabilities) if len(rows) else None
        # Judged against the estimate on reference windows: realized accuracy on a small
        # validation split of a good model is often 100% in every window, a band of width 0.
        figures.append(
            self._figure(
                "estimated_accuracy",
                probabilities,
                reference.probabilities,
                lambda w, _: estimate_accuracy(w).value,
                "lower",
            )
        )
        labelled = rows[self.truth[rows] >= 0]
        realized = (
            realized_accuracy(self.probabilities[labelled], self.truth[labelled])
            if len(labelled)
            else None
        )
        times = logged.times[rows]
        return WindowReport(
            float(times[0]), float(times[-1]), len(rows), figures, estimate, realized, len(labelled)
        )

    def _figure(
        self,
        name: str,
        window: np.ndarray,
        reference: np.ndarray | None,
        figure_of: Callable[[np.ndarray, np.ndarray], float],
        sides: Sides,
    ) -> DriftFigure:
        """``drift_figure``, its band learned once per (figure, window size)."""
        key = (name, len(window))
        figure = drift_figure(name, window, reference, figure_of, sides, band=self._bands.get(key))
        if figure.band is not None:
            self._bands[key] = figure.band
        return figure


def _confidence(probabilities: np.ndarray) -> np.ndarray:
    """Top probabilities on one grid: the log keeps float32 and the profile six decimals, and
    near 1.0 (a sharp model) that storage difference alone would move a KS distance."""
    return np.round(probabilities.max(axis=1), CONFIDENCE_DECIMALS)

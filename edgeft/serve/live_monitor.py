"""The monitor inside the server: each serving version's latest window, every ``interval_s``.

The figures become Prometheus gauges (alert on them where the rest of the plant's metrics go)
and a bounded history for the status page. It reads the log's newest rows only and runs off the
event loop, so it costs a fraction of a core once a minute, never a request's latency.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
from prometheus_client import Gauge
from starlette.concurrency import run_in_threadpool

from edgeft.bundle.reference_statistics import ReferenceStatistics
from edgeft.errors import EdgeftError
from edgeft.monitor.analysis import VersionAnalysis, WindowReport
from edgeft.monitor.prediction_log import PredictionLog, read_log
from edgeft.serve.models import LoadedModel, ServedModels
from edgeft.serve.prometheus import ServerMetrics

log = logging.getLogger("edgeft.serve")

HISTORY = 240  # points per model kept for the status page's charts


@dataclass(frozen=True)
class Snapshot:
    """One model version's latest window, as of ``time``."""

    time: float
    version: str
    window: WindowReport


class LiveMonitor:
    def __init__(
        self,
        models: ServedModels,
        log_: PredictionLog,
        metrics: ServerMetrics,
        window_items: int = 500,
        interval_s: float = 60.0,
    ) -> None:
        self.models = models
        self.log = log_
        self.metrics = metrics
        self.window_items = window_items
        self.interval_s = interval_s
        self.history: dict[str, deque[Snapshot]] = {}
        self.problems: dict[str, str] = {}  # model -> why it is not monitored
        registry = metrics.registry
        labels = ["model", "version", "figure"]
        self.value = Gauge(
            "edgeft_drift_value", "The latest window's drift figure.", labels, registry=registry
        )
        self.alert = Gauge(
            "edgeft_drift_alert", "1 when the figure is outside its learned band.", labels,
            registry=registry,
        )  # fmt: skip
        self.estimated = Gauge(
            "edgeft_estimated_accuracy", "CBPE accuracy estimate of the latest window.",
            ["model", "version"], registry=registry,
        )  # fmt: skip
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.update()

    async def update(self) -> None:
        """Analyse the newest window of every serving version now."""
        for name, slot in list(self.models.slots.items()):
            if slot.serving is not None:
                try:
                    await run_in_threadpool(self._update_one, slot.serving)
                    self.problems.pop(name, None)
                except Exception as exc:  # an accessory: counted and shown, serving goes on
                    why = str(exc) if isinstance(exc, EdgeftError) else f"it failed ({exc})"
                    self.problems[name] = why
                    self.metrics.record_accessory_failure("live_monitor", f"{name}: {why}")

    def _update_one(self, model: LoadedModel) -> None:
        self.log.flush()
        logged = read_log(self.log.path, model.name, model.version, last=self.window_items)
        if not logged:
            return
        reference = ReferenceStatistics.of(model.predictor.bundle)
        analysis = VersionAnalysis(reference, logged[0])
        window = analysis.window(np.arange(len(logged[0])))
        for figure in window.figures:
            if figure.value is not None:
                self.value.labels(model.name, model.version, figure.name).set(figure.value)
            self.alert.labels(model.name, model.version, figure.name).set(float(figure.alert))
        if window.estimate is not None:
            self.estimated.labels(model.name, model.version).set(window.estimate.value)
        history = self.history.setdefault(model.name, deque(maxlen=HISTORY))
        history.append(Snapshot(time.time(), model.version, window))

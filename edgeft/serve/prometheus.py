"""Prometheus metrics of one server: requests, latency, errors, batch sizes.

Each app owns its registry, so two servers in one process (tests) never share counters.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("edgeft.serve")
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "edgeft_requests", "HTTP requests by route and status code.",
            ["route", "code"], registry=self.registry,
        )  # fmt: skip
        self.errors = Counter(
            "edgeft_request_errors", "Requests answered with a 4xx or 5xx status.",
            ["route", "code"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "edgeft_request_duration_seconds", "Time from request to response, by route.",
            ["route"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.batch_size = Histogram(
            "edgeft_batch_size", "Items per engine call (dynamic batching).",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64), registry=self.registry,
        )  # fmt: skip
        self.inference = Histogram(
            "edgeft_inference_duration_seconds", "Engine time per batch.",
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip

        self.failures = Counter(
            "edgeft_inference_failures", "Inference failures: a request's own, the worker's, a warm-up's.",
            ["kind"], registry=self.registry,
        )  # fmt: skip
        self.ready = Gauge(
            "edgeft_model_ready", "1 while the model is ready (validated, warm, worker running).",
            registry=self.registry,
        )  # fmt: skip
        self.queued = Gauge(
            "edgeft_queue_items", "Items waiting for the engine.", registry=self.registry
        )

        self.accessory_failures = Counter(
            "edgeft_accessory_failures", "Failures of accessories serving went on without.",
            ["accessory"], registry=self.registry,
        )  # fmt: skip
        self.accessory_problems: dict[str, str] = {}  # accessory -> its latest failure

        self.shadow_items = Counter(
            "edgeft_shadow_items", "Items a shadow version also answered, by agreement.",
            ["model", "agreed"], registry=self.registry,
        )  # fmt: skip
        self.shadow_latency = Histogram(
            "edgeft_shadow_duration_seconds", "A shadow version's time per request.",
            ["model"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip

    def record_accessory_failure(self, accessory: str, why: str) -> None:
        """An accessory (the prediction log, the live monitor, a shadow) failed; serving went
        on. Counted, logged, and its latest reason kept for the status page."""
        self.accessory_failures.labels(accessory).inc()
        self.accessory_problems[accessory] = why
        log.error("%s: %s (serving goes on)", accessory, why)

    def record_shadow(
        self, model: str, production: np.ndarray, shadow: np.ndarray, seconds: float
    ) -> None:
        agreed = int((production.argmax(axis=1) == shadow.argmax(axis=1)).sum())
        self.shadow_items.labels(model, "true").inc(agreed)
        self.shadow_items.labels(model, "false").inc(len(production) - agreed)
        self.shadow_latency.labels(model).observe(seconds)

    def ready_probe(self, ready: Callable[[], bool], queued: Callable[[], int]) -> None:
        """Both gauges read the server's state when scraped."""
        self.ready.set_function(lambda: float(ready()))
        self.queued.set_function(lambda: float(queued()))

    def record_failure(self, kind: str) -> None:
        self.failures.labels(kind).inc()

    def record_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.inference.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetricsMiddleware:
    """Counts every response, including those refused before routing (413, 401)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(name, str(status)).inc()
            if status >= 400:
                self.metrics.errors.labels(name, str(status)).inc()
            self.metrics.latency.labels(name).observe(time.perf_counter() - started)

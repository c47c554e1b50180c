"""Latency of one engine session: warm-up, then timed calls until a duration or count is met.

Percentiles come from every timed call; the median is what comparisons quote (these machines
are noisy, and the median is robust to the odd stall).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgeft.runtime.engines import EngineSession


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds per call at ``batch``; ``throughput`` is items per second at the median."""

    batch: int
    calls: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float

    @property
    def throughput(self) -> float:
        return 1000.0 * self.batch / self.p50_ms

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"throughput": self.throughput}


def summarise(times_s: list[float], batch: int) -> LatencyStats:
    ms = np.asarray(times_s) * 1000.0
    return LatencyStats(
        batch=batch,
        calls=len(ms),
        p50_ms=float(np.percentile(ms, 50)),
        p90_ms=float(np.percentile(ms, 90)),
        p99_ms=float(np.percentile(ms, 99)),
        mean_ms=float(ms.mean()),
        std_ms=float(ms.std()),
        min_ms=float(ms.min()),
    )


def time_calls(
    session: EngineSession, inputs: Mapping[str, np.ndarray], duration_s: float, min_calls: int
) -> list[float]:
    """Seconds per ``session.run(inputs)``, back to back for ``duration_s`` (at least
    ``min_calls`` calls)."""
    times: list[float] = []
    deadline = time.perf_counter() + duration_s
    while time.perf_counter() < deadline or len(times) < min_calls:
        started = time.perf_counter()
        session.run(inputs)
        times.append(time.perf_counter() - started)
    return times


def measure_latency(
    session: EngineSession,
    inputs: Mapping[str, np.ndarray],
    duration_s: float = 5.0,
    warmup: int = 10,
    min_calls: int = 20,
) -> LatencyStats:
    """Warm up, then time ``session.run(inputs)`` for ``duration_s`` (at least ``min_calls``)."""
    for _ in range(warmup):
        session.run(inputs)
    batch = len(next(iter(inputs.values())))
    return summarise(time_calls(session, inputs, duration_s, min_calls), batch)

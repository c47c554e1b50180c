"""Benchmarking models as the edge box runs them: latency statistics per engine session."""

from edgeft.bench.latency import LatencyStats, measure_latency, summarise

__all__ = ["LatencyStats", "measure_latency", "summarise"]

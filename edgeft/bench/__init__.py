"""Benchmarking models as the edge box runs them: latency, throughput, cold start and memory
per target profile, a results database and an HTML report."""

from edgeft.bench.latency import LatencyStats, measure_latency, summarise, time_calls
from edgeft.bench.run import BenchmarkRun, ModelBenchmark, benchmark_bundle
from edgeft.bench.store import ResultsStore

__all__ = [
    "BenchmarkRun",
    "LatencyStats",
    "ModelBenchmark",
    "ResultsStore",
    "benchmark_bundle",
    "measure_latency",
    "summarise",
    "time_calls",
]

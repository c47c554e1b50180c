"""How fast an accepted int8 model runs against its fp32 model on this host, at batch 1.

A short interleaved timing (rounds of each model in turn, the median of the round medians), so
that an int8 model slower than its fp32 never ships unremarked: the manifest records the ratio
and ``quantize`` says so. Full comparisons belong to ``edgeft bench``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgeft.bench.latency import measure_latency
from edgeft.bundle.manifest import Int8Speed
from edgeft.runtime.engines import open_session

ROUNDS = 3
SECONDS_PER_ROUND = 0.3


def int8_speed(
    engine: str, int8_path: Path, fp32_path: Path, inputs: Mapping[str, np.ndarray]
) -> Int8Speed:
    """``fp32_p50_ms``, ``int8_p50_ms`` and ``speedup`` (fp32 over int8) on ``inputs``."""
    sessions = {
        "fp32": open_session(engine, fp32_path, precision="fp32"),
        "int8": open_session(engine, int8_path, precision="int8"),
    }
    p50s: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(ROUNDS):
        for name, session in sessions.items():
            stats = measure_latency(session, inputs, SECONDS_PER_ROUND, warmup=3, min_calls=5)
            p50s[name].append(stats.p50_ms)
    fp32, int8 = (float(np.median(p50s[name])) for name in ("fp32", "int8"))
    return Int8Speed(
        fp32_p50_ms=round(fp32, 3),
        int8_p50_ms=round(int8, 3),
        speedup=round(fp32 / int8, 3),
        batch=1,
    )

"""Cold start and peak memory, measured in a fresh process as the edge box would start.

The parent starts ``python -m edgeft.bench.probe`` and times until the child reports its first
result (interpreter start, imports, bundle verification, compilation, first inference); the
child then runs a few more calls and reports its peak resident memory.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeft.errors import EdgeftError


@dataclass(frozen=True)
class ProcessProbe:
    cold_start_ms: float
    peak_rss_mb: float
    runtime_rss_mb: float  # after imports, before the model: what the model adds is the rest


def probe_model(
    bundle: Path, engine: str, precision: str, batch: int, settings: dict[str, Any]
) -> ProcessProbe:
    command = [
        sys.executable, "-m", "edgeft.bench.probe", str(bundle), engine, precision, str(batch),
        json.dumps(settings),
    ]  # fmt: skip
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    first = child.stdout.readline()
    cold_start = time.perf_counter() - started
    rest, errors = child.communicate(timeout=300)
    if child.returncode != 0 or first.strip() != "first-result":
        raise EdgeftError(
            f"cold-start probe of {engine}/{precision} failed: {errors.strip()[-500:]}"
        )
    memory = json.loads(rest)
    return ProcessProbe(cold_start * 1000, memory["peak_rss_mb"], memory["runtime_rss_mb"])


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _child(bundle: str, engine: str, precision: str, batch: str, settings: str) -> None:
    from edgeft.bench.inputs import benchmark_inputs
    from edgeft.bundle import Bundle
    from edgeft.runtime.engines import open_session, session_class

    session_class(engine)  # import the engine before the baseline reading
    runtime_rss = _peak_rss_mb()
    loaded = Bundle.load(bundle)
    entry = loaded.manifest.model(engine, precision)
    options = json.loads(settings)
    threads = options.pop("threads", None)
    session = open_session(
        engine, loaded.path_of(entry), threads=threads, precision=precision, **options
    )
    inputs = benchmark_inputs(loaded, int(batch))
    session.run(inputs)
    print("first-result", flush=True)
    for _ in range(10):
        session.run(inputs)
    print(json.dumps({"peak_rss_mb": _peak_rss_mb(), "runtime_rss_mb": runtime_rss}), flush=True)


if __name__ == "__main__":
    _child(*sys.argv[1:])

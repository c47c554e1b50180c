"""Cold start and peak memory, measured in a fresh process as the edge box would start.

The parent starts ``python -m edgeft.bench.probe_child`` and times until the child reports its first
result (interpreter start, imports, bundle verification, compilation, first inference); the
child then runs a few more calls and reports its peak resident memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeft.bundle import ModelEntry
from edgeft.errors import EdgeftError


@dataclass(frozen=True)
class ProcessProbe:
    cold_start_ms: float
    peak_rss_mb: float


def probe_model(
    bundle: Path, entry: ModelEntry, batch: int, settings: dict[str, Any]
) -> ProcessProbe:
    command = [
        sys.executable, "-m", "edgeft.bench.probe_child", str(bundle), entry.path, str(batch),
        json.dumps(settings),
    ]  # fmt: skip
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    first = child.stdout.readline()
    cold_start = time.perf_counter() - started
    rest, errors = child.communicate(timeout=300)
    if child.returncode != 0 or first.strip() != "first-result":
        raise EdgeftError(f"cold-start probe of {entry.label} failed: {errors.strip()[-500:]}")
    memory = json.loads(rest)
    return ProcessProbe(cold_start * 1000, memory["peak_rss_mb"])

"""Cold start and peak memory, measured in a fresh process as the edge box would start.

The parent starts ``python -m edgeft.bench.probe_child`` and times until the child reports its first
result (interpreter start, imports, bundle verification, compilation, first inference); the
child then runs a few more calls and reports its peak resident memory. A child that has not
finished within the probe's timeout (stuck compiling, say) is killed, so a benchmark never hangs.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeft.bundle import ModelEntry
from edgeft.errors import EdgeftError

# A probe loads, compiles and runs one model eleven times: minutes only if something is stuck.
PROBE_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class ProcessProbe:
    cold_start_ms: float
    peak_rss_mb: float


def probe_model(
    bundle: Path,
    entry: ModelEntry,
    batch: int,
    settings: dict[str, Any],
    timeout_s: float = PROBE_TIMEOUT_S,
) -> ProcessProbe:
    """Cold start and peak memory of ``entry`` in a fresh process, which is stopped if it has
    not finished within ``timeout_s``."""
    command = [
        sys.executable, "-m", "edgeft.bench.probe_child", str(bundle), entry.path, str(batch),
        json.dumps(settings),
    ]  # fmt: skip
    cold_start_s, rest = _run_probe(command, timeout_s, f"cold-start probe of {entry.label}")
    return ProcessProbe(cold_start_s * 1000, json.loads(rest)["peak_rss_mb"])


def _run_probe(command: list[str], timeout_s: float, what: str) -> tuple[float, str]:
    """Run the probe child to its end: seconds until its ``first-result`` line, and the output
    after that line. The child is killed and reaped whatever happens, so none outlives the call;
    its stderr goes to a file, where no full pipe can stall it."""
    late = f"{what} did not finish within {timeout_s:g} s; it was stopped"
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        deadline = started + timeout_s
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
        assert child.stdout is not None
        output, first_line_at = b"", None
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(child.stdout, selectors.EVENT_READ)
                while True:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0 or not selector.select(remaining):
                        raise EdgeftError(late)
                    chunk = os.read(child.stdout.fileno(), 65536)
                    if not chunk:  # the child closed its output: it is exiting
                        break
                    output += chunk
                    if first_line_at is None and b"\n" in output:
                        first_line_at = time.perf_counter()
            child.wait(timeout=max(deadline - time.perf_counter(), 0))
        except subprocess.TimeoutExpired:
            raise EdgeftError(late) from None
        finally:
            child.kill()
            child.wait()
            child.stdout.close()
        errors.seek(0)
        stderr = errors.read().decode(errors="replace").strip()
    first, _, rest = output.decode(errors="replace").partition("\n")
    if child.returncode != 0 or first.strip() != "first-result" or first_line_at is None:
        raise EdgeftError(f"{what} failed: {stderr[-500:]}")
    return first_line_at - started, rest

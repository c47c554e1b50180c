"""The child side of ``edgeft.bench.probe``: load, infer once, say so, then report memory.

Kept out of the package's imports so ``python -m`` runs it without a second copy.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")


def _peak_rss_mb() -> float:
    """This process's own peak resident set. Linux's VmHWM starts afresh at exec, whereas
    ru_maxrss carries over the forking parent's peak."""
    if _STATUS.is_file():
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(bundle: str, model_path: str, batch: str, settings: str) -> None:
    from edgeft.bench.inputs import benchmark_inputs
    from edgeft.bundle import Bundle
    from edgeft.runtime.task_predictor import open_model_session

    loaded = Bundle.load(bundle)
    entry = next(m for m in loaded.manifest.models if m.path == model_path)
    session = open_model_session(loaded, entry, **json.loads(settings))
    inputs = benchmark_inputs(loaded, int(batch))
    session.run(inputs)
    print("first-result", flush=True)
    for _ in range(10):
        session.run(inputs)
    print(json.dumps({"peak_rss_mb": _peak_rss_mb()}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])

"""Hot swap under load: `edgeft serve REPO` answering 16 clients while production is promoted
to another version and rolled back, several times.

    .venv/bin/python benchmarks/repository_swap.py [--bundle BUNDLE] [--swaps 6] [--clients 16]

Without --bundle the zoo MobileNetV2 is exported to a temporary folder; it is pushed twice (two
versions of the same content; the responses name the version that answered). For each move of
the alias: the time from the command to the first answer from the new version, to the last
answer from the old one, and the failed requests (any status but 200). Writes
benchmarks/results/repository_swap.{json,md}.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from side_by_side import write_table

from edgeft.bench.server_process import ServerProcess
from edgeft.repository import ModelRepository
from edgeft.serve.protocol import encode_infer_request
from edgeft.targets import host_fingerprint

RESULTS = Path(__file__).parent / "results"
MODEL = "swapped"
console = Console()


class Clients:
    """Clients sending requests back to back; each answer logged as (time, status, version)."""

    def __init__(self, port: int, clients: int) -> None:
        body, headers = encode_infer_request({"input": np.zeros((1, 3, 224, 224), np.float32)})
        self.answers: list[tuple[float, int, str | None, float]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()

        def run() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            while not self._stop.is_set():
                started = time.perf_counter()
                connection.request("POST", f"/v2/models/{MODEL}/infer", body, headers)
                response = connection.getresponse()
                data = response.read()
                length = int(response.headers.get("Inference-Header-Content-Length") or len(data))
                version = json.loads(data[:length]).get("model_version")
                now = time.perf_counter()
                with self._lock:
                    self.answers.append((now, response.status, version, now - started))

        self._threads = [threading.Thread(target=run) for _ in range(clients)]

    def __enter__(self) -> Clients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def since(self, moment: float) -> list[tuple[float, int, str | None, float]]:
        with self._lock:
            return [a for a in self.answers if a[0] >= moment]


def move_alias(repo: Path, clients: Clients, to: str, action: list[str]) -> dict[str, float]:
    """Run the command, then wait until eight answers in a row come from ``to``."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "edgeft", "repo", *action], check=True, capture_output=True
    )
    command_done = time.perf_counter()
    while True:
        recent = clients.since(started)
        if len(recent) >= 8 and all(v == to for _, _, v, _ in recent[-8:]):
            break
        time.sleep(0.01)
    time.sleep(1.0)  # let the old version's queue drain
    window = clients.since(started)
    first_new = min(t for t, _, v, _ in window if v == to)
    old = [t for t, _, v, _ in window if v != to]
    return {
        "to": to,
        "command_s": command_done - started,
        "first_new_answer_s": first_new - started,
        "last_old_answer_s": (max(old) - started) if old else 0.0,
        "answers": len(window),
        "failed": sum(status != 200 for _, status, _, _ in window),
        "p99_ms": float(np.percentile([d for *_, d in window], 99) * 1000),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--swaps", type=int, default=6)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        bundle = args.bundle
        if bundle is None:
            from edgeft.export import export_bundle

            bundle = export_bundle("mobilenet_v2", Path(work) / "mobilenet_v2").root
        repo = Path(work) / "repo"
        repository = ModelRepository(repo, create=True)
        for _ in range(2):
            repository.push(bundle, MODEL, validate=False)
        repository.promote(MODEL, 1)
        options = ["--engine", "onnxruntime", "--precision", "fp32", "--max-wait-ms", "2"]
        with ServerProcess(repo, options) as server, Clients(server.port, args.clients) as clients:
            time.sleep(2.0)
            steady = clients.since(0)
            moves = []
            for i in range(args.swaps):
                if i % 2 == 0:
                    moves.append(move_alias(repo, clients, "2", ["promote", str(repo), MODEL, "2"]))
                else:
                    moves.append(move_alias(repo, clients, "1", ["rollback", str(repo), MODEL]))
                console.print(moves[-1])
            total = clients.since(0)
    result = {
        "host": host_fingerprint(),
        "clients": args.clients,
        "moves": moves,
        "requests": len(total),
        "failed": sum(status != 200 for _, status, _, _ in total),
        "steady_p99_ms": float(np.percentile([d for *_, d in steady], 99) * 1000),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "repository_swap.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = {
        f"{i + 1}: {'promote' if i % 2 == 0 else 'rollback'} -> {m['to']}": [
            f"{m['command_s']:.2f}",
            f"{m['first_new_answer_s']:.2f}",
            f"{m['last_old_answer_s']:.2f}",
            str(m["answers"]),
            str(m["failed"]),
            f"{m['p99_ms']:.0f}",
        ]
        for i, m in enumerate(moves)
    }
    first = np.median([m["first_new_answer_s"] for m in moves])
    preamble = (
        "# Hot swap under load\n\n"
        f"Command: `.venv/bin/python benchmarks/repository_swap.py --swaps {args.swaps} "
        f"--clients {args.clients}` (zoo MobileNetV2 pushed twice, ONNX Runtime fp32, the server "
        f"polling its aliases each second), host: {result['host']['cpu']} "
        f"({result['host']['cores']} cores, {', '.join(result['host']['flags'])}).\n\n"
        f"{result['requests']} requests in all, **{result['failed']} failed**. Median time from "
        f"the command to the new version's first answer: {first:.2f} s (the alias poll, loading "
        "and warming the version beside the serving one). Requests already queued on the old "
        "version finish there: the last old answer comes at most a few batches later. p99 "
        f"latency while nothing moves: {result['steady_p99_ms']:.0f} ms."
    )
    write_table(
        rows,
        [
            "move",
            "command s",
            "first new answer s",
            "last old answer s",
            "answers",
            "failed",
            "p99 ms",
        ],
        "hot swap",
        RESULTS / "repository_swap.md",
        preamble,
        console,
    )


if __name__ == "__main__":
    main()

"""A bounded soak of `edgeft serve`: many clients mixing good, malformed, oversized, hostile and
slow or vanishing requests, to show the server answers each with the right code, never a 5xx for
client input, and that its memory stays bounded.

    .venv/bin/python benchmarks/serve_soak.py [--bundle BUNDLE] [--requests 20000] [--clients 16]

Without --bundle the zoo MobileNetV2 is exported to a temporary folder. The server runs in a
child process (ONNX Runtime, --max-request-mb 2, --body-timeout-s 2); its resident memory is
sampled every 0.25 s. Writes benchmarks/results/serve_soak.{json,md}.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import random
import re
import socket
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
from PIL import Image
from rich.console import Console
from rich.progress import Progress
from side_by_side import write_table

from edgeft.bundle import Bundle
from edgeft.serve.process import ServerProcess
from edgeft.serve.protocol import encode_infer_request
from edgeft.targets import host_fingerprint

RESULTS = Path(__file__).parent / "results"
MODEL = "soak"
INFER = f"/v2/models/{MODEL}/infer"
console = Console()


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _v2(tensor: dict) -> bytes:
    return json.dumps({"inputs": [tensor]}).encode()


def request_kinds() -> dict[str, tuple[float, str, bytes, dict[str, str]]]:
    """kind -> (share of requests, path, body, headers); ``slow`` and ``vanish`` are sent by hand."""
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)
    good_v2, v2_headers = encode_infer_request(
        {"input": rng.normal(size=(1, 3, 224, 224)).astype(np.float32)}
    )
    png = {"Content-Type": "image/png"}
    json_type = {"Content-Type": "application/json"}
    image = {"name": "input", "datatype": "FP32", "shape": [1, 3, 224, 224]}
    return {
        "good v2 binary": (0.40, INFER, good_v2, v2_headers),
        "good PNG upload": (0.15, "/v1/predict", _png(photo), png),
        "malformed JSON": (0.06, INFER, b'{"inputs": [{"name": "input", "shape": [1,', json_type),
        "UINT8 300": (0.03, INFER, _v2(image | {"datatype": "UINT8", "data": [300]}), json_type),
        "bool in shape": (0.03, INFER, _v2(image | {"shape": [True, 3, 224, 224]}), json_type),
        "NaN": (
            0.03,
            INFER,
            b'{"inputs": [{"name": "input", "shape": [1], "datatype": "FP32", "data": [NaN]}]}',
            json_type,
        ),
        "corrupt PNG": (0.04, "/v1/predict", _png(photo)[:2000], png),
        "thin PNG 20000x1": (0.04, "/v1/predict", _png(np.zeros((1, 20000, 3), np.uint8)), png),
        "bomb PNG 8000x8000": (0.04, "/v1/predict", _png(np.zeros((8000, 8000), np.uint8)), png),
        "oversized 3 MB": (0.04, INFER, b"0" * (3 << 20), json_type),
        "slow client": (0.04, INFER, good_v2, v2_headers),
        "vanishing client": (0.10, INFER, good_v2, v2_headers),
    }


def send(port: int, kind: str, path: str, body: bytes, headers: dict[str, str]) -> int:
    """The status code, or 0 for a request whose client gave up on purpose."""
    if kind == "slow client":  # half the body, then silence: the server's body timeout ends it
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode()
                + body[: len(body) // 2]
            )
            reply = sock.recv(4096)
        return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1") else -1
    if kind == "vanishing client":  # the whole request, then gone before the answer
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode()
                + body
            )
        return 0
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    except (ConnectionError, http.client.HTTPException):
        return -1  # the server closed the connection without an answer
    finally:
        connection.close()


def sample_memory(pid: int, stop: threading.Event, samples: list[float]) -> None:
    process = psutil.Process(pid)
    while not stop.wait(0.25):
        samples.append(process.memory_info().rss / 2**20)


def soak(server: ServerProcess, total: int, clients: int) -> dict:
    kinds = request_kinds()
    names = list(kinds)
    weights = [kinds[k][0] for k in names]
    plan = random.Random(1).choices(names, weights, k=total)
    codes: dict[str, Counter[int]] = defaultdict(Counter)
    latency: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()
    cursor = iter(range(total))

    def client(progress: Callable[[], None]) -> None:
        for index in cursor:  # shared: each index taken by exactly one client
            kind = plan[index]
            _, path, body, headers = kinds[kind]
            started = time.perf_counter()
            code = send(server.port, kind, path, body, headers)
            elapsed = time.perf_counter() - started
            with lock:
                codes[kind][code] += 1
                latency[kind].append(elapsed)
            progress()

    with Progress(console=console) as bar:
        task = bar.add_task(f"{total} requests from {clients} clients", total=total)
        threads = [
            threading.Thread(target=client, args=(lambda: bar.advance(task),))
            for _ in range(clients)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return {
        "seconds": time.perf_counter() - started,
        "codes": {k: dict(v) for k, v in codes.items()},
        "latency_ms": {
            k: {
                "p50": float(np.percentile(v, 50) * 1000),
                "p99": float(np.percentile(v, 99) * 1000),
            }
            for k, v in latency.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        if args.bundle is None:
            from edgeft.export import export_bundle

            bundle = export_bundle("mobilenet_v2", Path(work) / "mobilenet_v2")
        else:
            bundle = Bundle.load(args.bundle)
        options = [
            "--model-name", MODEL, "--engine", "onnxruntime", "--precision", "fp32",
            "--max-request-mb", "2", "--body-timeout-s", "2",
        ]  # fmt: skip
        with ServerProcess(bundle.root, options) as server:
            assert server.process is not None
            warm = soak_warm_up(server)
            memory: list[float] = []
            stop = threading.Event()
            sampler = threading.Thread(
                target=sample_memory, args=(server.process.pid, stop, memory)
            )
            sampler.start()
            rss_before = psutil.Process(server.process.pid).memory_info().rss / 2**20
            result = soak(server, args.requests, args.clients)
            time.sleep(1.0)
            rss_after = psutil.Process(server.process.pid).memory_info().rss / 2**20
            stop.set()
            sampler.join()
            refusals = unloaded_refusals(server)
            _, metrics = server.request("GET", "/metrics")
    counts = server_counts(metrics.decode())
    result |= {
        "server_counts": counts,
        "host": host_fingerprint(),
        "requests": args.requests,
        "clients": args.clients,
        "warm_up_requests": warm,
        "rss_mb": {
            "before": rss_before,
            "after": rss_after,
            "peak": max(memory),
            "at_quarters": [
                memory[min(len(memory) - 1, len(memory) * q // 4)] for q in (1, 2, 3, 4)
            ],
        },
        "unloaded_refusal_ms": refusals,
        "server_5xx": sum(
            n for codes in result["codes"].values() for c, n in codes.items() if c >= 500
        ),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serve_soak.json").write_text(json.dumps(result, indent=2) + "\n")
    write_report(result)


def unloaded_refusals(server: ServerProcess, repeats: int = 30) -> dict[str, dict[str, float]]:
    """Median and p90 client time of hostile requests sent one at a time to an idle server."""
    kinds = request_kinds()
    out = {}
    for kind in ("thin PNG 20000x1", "bomb PNG 8000x8000", "UINT8 300", "good v2 binary"):
        _, path, body, headers = kinds[kind]
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            send(server.port, kind, path, body, headers)
            times.append((time.perf_counter() - started) * 1000)
        out[kind] = {"p50": float(np.median(times)), "p90": float(np.percentile(times, 90))}
    return out


def server_counts(metrics: str) -> dict[str, float]:
    """Answers by status code and route, as the server's own /metrics counted them."""
    pattern = r'^edgeft_requests_total\{code="(\d+)",route="([^"]*)"\} (\S+)$'
    return {
        f"{code} {route}": float(count)
        for code, route, count in sorted(re.findall(pattern, metrics, re.M))
    }


def soak_warm_up(server: ServerProcess, count: int = 200) -> int:
    """Good requests before the first memory reading, so allocator arenas are grown."""
    _, path, body, headers = request_kinds()["good v2 binary"]
    for _ in range(count):
        assert send(server.port, "good v2 binary", path, body, headers) == 200
    return count


def write_report(result: dict) -> None:
    rows = {
        kind: [
            ", ".join(f"{code}: {n}" for code, n in sorted(counts.items())),
            f"{result['latency_ms'][kind]['p50']:.1f}",
            f"{result['latency_ms'][kind]['p99']:.1f}",
        ]
        for kind, counts in sorted(result["codes"].items())
    }
    memory = result["rss_mb"]
    preamble = (
        "# `edgeft serve` soak\n\n"
        f"Command: `.venv/bin/python benchmarks/serve_soak.py --requests {result['requests']} "
        f"--clients {result['clients']}` (zoo MobileNetV2, ONNX Runtime fp32, --max-request-mb 2, "
        f"--body-timeout-s 2), host: {result['host']['cpu']} ({result['host']['cores']} cores).\n\n"
        f"{result['requests']} requests in {result['seconds']:.0f} s; **{result['server_5xx']} "
        f"responses with a 5xx code**. Server resident memory: {memory['before']:.0f} MB after "
        f"{result['warm_up_requests']} warm-up requests, {memory['after']:.0f} MB after the soak, "
        f"peak {memory['peak']:.0f} MB; at each quarter of the soak: "
        f"{', '.join(f'{m:.0f}' for m in memory['at_quarters'])} MB.\n\n"
        "One at a time on the idle server afterwards (client time, median / p90 of 30): "
        + "; ".join(
            f"{kind} {t['p50']:.1f} / {t['p90']:.1f} ms"
            for kind, t in result["unloaded_refusal_ms"].items()
        )
        + ".\n\n"
        "The server's own count of its answers by code and route (/metrics; 499 = the request "
        "of a vanished client, dropped before the engine ran it): "
        + ", ".join(f"{key}: {n:.0f}" for key, n in result["server_counts"].items())
        + ".\n\n"
        "Codes: 0 = the client left on purpose before the answer (the server drops its request "
        "before the engine runs it); -1 = the connection closed without an answer. Latency is "
        "the client's, from connecting to the last byte (for slow clients, until the server's "
        "408)."
    )
    write_table(
        rows, ["request", "status codes", "p50 ms", "p99 ms"], "serve soak",
        RESULTS / "serve_soak.md", preamble, console,
    )  # fmt: skip


if __name__ == "__main__":
    main()

"""A bounded soak of `edgeft serve`: many clients mixing good, malformed, oversized, hostile and
slow or vanishing requests over REST and gRPC, while production is promoted and rolled back over
and over, to show the server answers each with the right code, never a server fault for client
input nor a failed request across a hot swap, and that its memory stays bounded.

    .venv/bin/python benchmarks/serve_soak.py [--bundle BUNDLE] [--requests 20000] [--clients 16]
                                              [--move-every-s 2]

Without --bundle the zoo MobileNetV2 is exported to a temporary folder. It is pushed twice into
a repository (two versions, production on 1) that the server follows (`edgeft serve REPO`, ONNX
Runtime, --max-request-mb 2, --body-timeout-s 2, --grpc-port); a mover alternates `promote 2` and
`rollback` every --move-every-s seconds (0: no moves) through the soak. The server's resident
memory is sampled every 0.25 s. Writes benchmarks/results/serve_soak.{json,md}.
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

import grpc
import numpy as np
import psutil
from PIL import Image
from rich.console import Console
from rich.progress import Progress
from side_by_side import write_table
from tritonclient.grpc import service_pb2

from edgeft.bench.server_process import ServerProcess, free_port
from edgeft.bundle import Bundle
from edgeft.repository import ModelRepository
from edgeft.serve.protocol import encode_infer_request
from edgeft.targets import host_fingerprint

RESULTS = Path(__file__).parent / "results"
MODEL = "soak"
INFER = f"/v2/models/{MODEL}/infer"
PREDICT = f"/v1/models/{MODEL}/predict"
GRPC_INFER = "/inference.GRPCInferenceService/ModelInfer"
# gRPC answers that are the client's mistake (or, as 503 over REST, overload); others are faults
GRPC_CLIENT_CODES = {"OK", "INVALID_ARGUMENT", "NOT_FOUND"}
console = Console()


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _v2(tensor: dict) -> bytes:
    return json.dumps({"inputs": [tensor]}).encode()


def _multipart(content: bytes) -> tuple[bytes, dict[str, str]]:
    boundary = "soak-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def _grpc_infer(datatype: str, shape: list[int], raw: list[bytes], **contents: list) -> bytes:
    tensor = service_pb2.ModelInferRequest.InferInputTensor(
        name="input", datatype=datatype, shape=shape
    )
    for field, values in contents.items():
        getattr(tensor.contents, field).extend(values)
    request = service_pb2.ModelInferRequest(
        model_name=MODEL, inputs=[tensor], raw_input_contents=raw
    )
    return request.SerializeToString()


def request_kinds() -> dict[str, tuple[float, str, bytes, dict[str, str]]]:
    """kind -> (share of requests, path, body, headers); ``slow`` and ``vanish`` are sent by hand."""
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)
    pixels = rng.normal(size=(1, 3, 224, 224)).astype(np.float32)
    good_v2, v2_headers = encode_infer_request({"input": pixels})
    grpc_pixels = _grpc_infer("FP32", [1, 3, 224, 224], [pixels.tobytes()])
    png = {"Content-Type": "image/png"}
    json_type = {"Content-Type": "application/json"}
    image = {"name": "input", "datatype": "FP32", "shape": [1, 3, 224, 224]}
    return {
        "good v2 binary": (0.28, INFER, good_v2, v2_headers),
        "good PNG upload": (0.08, "/v1/predict", _png(photo), png),
        "good multipart upload": (0.08, PREDICT, *_multipart(_png(photo))),
        "good v2 gRPC": (0.08, GRPC_INFER, grpc_pixels, {}),
        "gRPC garbage bytes": (0.015, GRPC_INFER, b"\x0a\xff\xff\xff\xff\x0f garbage", {}),
        "gRPC 2 raw for 1 input": (
            0.015,
            GRPC_INFER,
            _grpc_infer("FP32", [1, 3, 224, 224], [pixels.tobytes(), b"x"]),
            {},
        ),
        "gRPC bad UTF-8": (
            0.015,
            GRPC_INFER,
            _grpc_infer("BYTES", [1], [], bytes_contents=[b"\xff\xfe"]),
            {},
        ),
        "gRPC FP16 typed": (0.015, GRPC_INFER, _grpc_infer("FP16", [1, 3, 224, 224], []), {}),
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


_channels = threading.local()


def send_grpc(port: int, body: bytes) -> str:
    """The gRPC status code's name; each client thread keeps its own channel."""
    if getattr(_channels, "port", None) != port:
        _channels.port, _channels.channel = port, grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        _channels.channel.unary_unary(GRPC_INFER)(body, timeout=60)
    except grpc.RpcError as error:
        return error.code().name
    return "OK"


def is_failure(code: int | str) -> bool:
    """A server fault or an answer lost: a 5xx, a dropped connection, or the like over gRPC."""
    if isinstance(code, str):
        return code not in GRPC_CLIENT_CODES
    return code >= 500 or code == -1


def send(
    port: int, grpc_port: int, kind: str, path: str, body: bytes, headers: dict[str, str]
) -> int | str:
    """The status code, or 0 for a request whose client gave up on purpose."""
    if path == GRPC_INFER:
        return send_grpc(grpc_port, body)
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


def soak(server: ServerProcess, grpc_port: int, total: int, clients: int) -> dict:
    kinds = request_kinds()
    names = list(kinds)
    weights = [kinds[k][0] for k in names]
    plan = random.Random(1).choices(names, weights, k=total)
    codes: dict[str, Counter[int | str]] = defaultdict(Counter)
    latency: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()
    cursor = iter(range(total))

    def client(progress: Callable[[], None]) -> None:
        for index in cursor:  # shared: each index taken by exactly one client
            kind = plan[index]
            _, path, body, headers = kinds[kind]
            started = time.perf_counter()
            code = send(server.port, grpc_port, kind, path, body, headers)
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


def move_production(repository: ModelRepository, every_s: float, stop: threading.Event) -> list:
    """Promote version 2, roll back to 1, and so on, every ``every_s`` seconds until ``stop``."""
    moves = []
    while every_s > 0 and not stop.wait(every_s):
        if len(moves) % 2 == 0:
            repository.promote(MODEL, 2)
        else:
            repository.rollback(MODEL)
        moves.append(time.time())
    return moves


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--move-every-s", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        if args.bundle is None:
            from edgeft.export import export_bundle

            bundle = export_bundle("mobilenet_v2", Path(work) / "mobilenet_v2")
        else:
            bundle = Bundle.load(args.bundle)
        repository = ModelRepository(Path(work) / "repository", create=True)
        for _ in range(2):
            repository.push(bundle.root, name=MODEL, validate=False)
        repository.promote(MODEL, 1)
        grpc_port = free_port()
        options = [
            "--engine", "onnxruntime", "--precision", "fp32", "--max-request-mb", "2",
            "--body-timeout-s", "2", "--grpc-port", str(grpc_port),
        ]  # fmt: skip
        with ServerProcess(repository.root, options) as server:
            assert server.process is not None
            warm = soak_warm_up(server)
            memory: list[float] = []
            stop = threading.Event()
            sampler = threading.Thread(
                target=sample_memory, args=(server.process.pid, stop, memory)
            )
            moves: list[float] = []
            mover = threading.Thread(
                target=lambda: moves.extend(move_production(repository, args.move_every_s, stop))
            )
            sampler.start()
            mover.start()
            rss_before = psutil.Process(server.process.pid).memory_info().rss / 2**20
            result = soak(server, grpc_port, args.requests, args.clients)
            stop.set()
            mover.join()
            time.sleep(1.0)
            rss_after = psutil.Process(server.process.pid).memory_info().rss / 2**20
            sampler.join()
            refusals = unloaded_refusals(server, grpc_port)
            _, metrics = server.request("GET", "/metrics")
    counts = server_counts(metrics.decode())
    result |= {
        "server_counts": counts,
        "host": host_fingerprint(),
        "requests": args.requests,
        "clients": args.clients,
        "move_every_s": args.move_every_s,
        "moves": len(moves),
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
        "failures": sum(
            n for codes in result["codes"].values() for c, n in codes.items() if is_failure(c)
        ),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serve_soak.json").write_text(json.dumps(result, indent=2) + "\n")
    write_report(result)


def unloaded_refusals(
    server: ServerProcess, grpc_port: int, repeats: int = 30
) -> dict[str, dict[str, float]]:
    """Median and p90 client time of hostile requests sent one at a time to an idle server."""
    kinds = request_kinds()
    out = {}
    shown = (
        "thin PNG 20000x1",
        "bomb PNG 8000x8000",
        "UINT8 300",
        "good v2 binary",
        "good v2 gRPC",
    )
    for kind in shown:
        _, path, body, headers = kinds[kind]
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            send(server.port, grpc_port, kind, path, body, headers)
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
        assert send(server.port, 0, "good v2 binary", path, body, headers) == 200
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
        f"--clients {result['clients']} --move-every-s {result['move_every_s']:g}` (zoo "
        "MobileNetV2 pushed twice into a repository, `edgeft serve REPO` with ONNX Runtime fp32, "
        "--max-request-mb 2, --body-timeout-s 2, --grpc-port), host: "
        f"{result['host']['cpu']} ({result['host']['cores']} cores).\n\n"
        f"{result['requests']} requests in {result['seconds']:.0f} s while production moved "
        f"{result['moves']} times (promote 2, rollback, ...); **{result['failures']} failures** "
        "(a 5xx, a connection closed without an answer, or a gRPC code other than OK, "
        f"INVALID_ARGUMENT and NOT_FOUND). Server resident memory: {memory['before']:.0f} MB after "
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
        "gRPC requests show the status code's name. "
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

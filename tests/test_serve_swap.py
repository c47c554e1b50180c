"""Hot swaps and accessories against a real `edgeft serve REPO` process: uploads of every kind
(multipart, raw body, v2 REST, v2 gRPC) answered through repeated promote/rollback moves, and a
prediction log on a full disk that neither stops a swap nor serving."""

from __future__ import annotations

import http.client
import io
import json
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data
from tritonclient.grpc import service_pb2

from edgeft.bench.server_process import ServerProcess, free_port
from edgeft.repository import ModelRepository
from edgeft.serve.protocol import encode_infer_request
from tests.test_repository import MODEL, repo  # noqa: F401 - two versions, production on 1
from tests.test_serve import _multipart


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(skimage_data.chelsea()).save(buffer, format="PNG")
    return buffer.getvalue()


class MixedLoad:
    """Clients each sending one kind of request back to back; answers counted per kind."""

    def __init__(self, server: ServerProcess, grpc_port: int) -> None:
        self.server = server
        self.grpc_port = grpc_port
        self.answers: Counter[tuple[str, object]] = Counter()
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        png = _png()
        multipart, multipart_headers = _multipart([("cat.png", png)])
        v2, v2_headers = encode_infer_request({"input": np.zeros((1, 3, 224, 224), np.float32)})
        http_kinds = {
            "multipart": (f"/v1/models/{MODEL}/predict", multipart, multipart_headers),
            "raw body": (f"/v1/models/{MODEL}/predict", png, {"Content-Type": "image/png"}),
            "v2 REST": (f"/v2/models/{MODEL}/infer", v2, v2_headers),
        }
        self.threads = [
            threading.Thread(target=self._http, args=(kind, *request))
            for kind, request in http_kinds.items()
            for _ in range(2)
        ] + [threading.Thread(target=self._grpc) for _ in range(2)]

    def _note(self, kind: str, outcome: object, why: str = "") -> None:
        with self.lock:
            self.answers[(kind, outcome)] += 1
            if why:
                self.failures.append(f"{kind}: {outcome} {why[:200]}")

    def _http(self, kind: str, path: str, body: bytes, headers: dict) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        while not self.stop.is_set():
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            answer = response.read()
            self._note(kind, response.status, "" if response.status == 200 else answer.decode())

    def _grpc(self) -> None:
        pixels = np.zeros((1, 3, 224, 224), dtype=np.float32)
        request = service_pb2.ModelInferRequest(
            model_name=MODEL,
            inputs=[
                service_pb2.ModelInferRequest.InferInputTensor(
                    name="input", datatype="FP32", shape=[1, 3, 224, 224]
                )
            ],
            raw_input_contents=[pixels.tobytes()],
        ).SerializeToString()
        with grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}") as channel:
            infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
            while not self.stop.is_set():
                try:
                    infer(request, timeout=60)
                    self._note("v2 gRPC", "OK")
                except grpc.RpcError as error:
                    self._note("v2 gRPC", error.code().name, error.details() or "")

    def __enter__(self) -> MixedLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def _index(server: ServerProcess) -> list[dict]:
    return json.loads(server.request("POST", "/v2/repository/index")[1])


def _wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _serving(server: ServerProcess, version: str) -> Callable[[], bool]:
    return lambda: any(
        r.get("version") == version and r["state"] == "READY" for r in _index(server)
    )


def test_every_kind_of_upload_is_answered_through_promote_and_rollback(
    repo: Path,  # noqa: F811
) -> None:
    grpc_port = free_port()
    options = ["--engine", "onnxruntime", "--grpc-port", str(grpc_port)]
    repository = ModelRepository(repo)
    with ServerProcess(repo, options) as server, MixedLoad(server, grpc_port) as load:
        for move in range(8):
            version = "2" if move % 2 == 0 else "1"
            if version == "2":
                repository.promote(MODEL, 2)
            else:
                repository.rollback(MODEL)
            _wait_until(_serving(server, version), f"version {version} never served")
            time.sleep(0.3)
    kinds = {kind for kind, _ in load.answers}
    assert kinds == {"multipart", "raw body", "v2 REST", "v2 gRPC"}, load.answers
    assert not load.failures, (load.failures[:5], load.answers)
    assert all(load.answers[(k, "OK" if k == "v2 gRPC" else 200)] >= 5 for k in kinds)
    assert "was never awaited" not in server.output and "Traceback" not in server.output


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB filesystem of its own (tmpfs), so a test can fill it up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(disk: Path) -> None:
    with open(disk / "filler", "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass


def test_a_full_log_disk_neither_stops_a_swap_nor_serving(
    repo: Path,  # noqa: F811
    small_disk: Path,
) -> None:
    log = small_disk / "predictions.sqlite"
    options = ["--engine", "onnxruntime", "--log", str(log)]
    png = _png()
    with ServerProcess(repo, options) as server:
        status, answer = server.request(
            "POST", f"/v1/models/{MODEL}/predict", png, {"Content-Type": "image/png"}
        )
        assert status == 200
        logged = json.loads(answer)["predictions"][0]
        feedback = json.dumps({"id": logged["id"], "label": logged["label"]}).encode()
        assert server.request("POST", "/v1/feedback", feedback)[0] == 200
        _fill(small_disk)
        ModelRepository(repo).promote(MODEL, 2)
        _wait_until(_serving(server, "2"), "version 2 never served with the log's disk full")
        status, answer = server.request(
            "POST", f"/v1/models/{MODEL}/predict", png, {"Content-Type": "image/png"}
        )
        assert status == 200, answer
        assert json.loads(answer)["model_version"] == "2"
        status, answer = server.request("POST", "/v1/feedback", feedback)
        assert status == 503 and b"prediction log" in answer, answer
        metrics = server.request("GET", "/metrics")[1].decode()
        failures = re.search(
            r'edgeft_accessory_failures_total\{accessory="prediction_log"\} (\d+)', metrics
        )
        assert failures and int(failures.group(1)) >= 2, metrics[-2000:]
        page = server.request("GET", "/")[1].decode()
        assert "Accessories" in page and "prediction_log" in page
        time.sleep(2)  # the repository watcher polls each second: it must not reload
    # each version opened once: no reload loop (it loaded version 2 every second before)
    assert server.output.count("running onnxruntime/fp32") == 2, server.output[-3000:]
    assert "Task was destroyed" not in server.output

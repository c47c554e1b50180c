"""The server when things go wrong on its side: an engine that fails on one item of a merged
batch, a worker that fails outright, a queue that fills, a client that leaves. Faults are
injected into a real bundle's predictor (its engine call wrapped), served in-process."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest
from starlette.testclient import TestClient

from edgeft.bundle import Bundle
from edgeft.runtime import Predictor
from edgeft.runtime.predictor import ModelOutputs
from edgeft.serve import ServerConfig
from edgeft.serve.app import create_app
from edgeft.serve.batching import ClientGone, DynamicBatcher
from edgeft.serve.protocol import encode_infer_request

MODEL = "faulty"
INFER = f"/v2/models/{MODEL}/infer"
POISON = 1234.5  # a first pixel no image produces: the injected engine fails on that row


class InjectedFault(RuntimeError):
    pass


class FaultyEngine:
    """The predictor's engine call, failing on poisoned rows, on every call while ``broken``,
    or slowly; records the batch size of every call."""

    def __init__(self, run: Callable[[Mapping[str, np.ndarray]], ModelOutputs]) -> None:
        self.run = run
        self.broken = threading.Event()
        self.delay_s = 0.0
        self.batches: list[int] = []

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> ModelOutputs:
        pixels = inputs["input"]
        self.batches.append(len(pixels))
        time.sleep(self.delay_s)
        if self.broken.is_set():
            raise InjectedFault("engine down")
        if (pixels[:, 0, 0, 0] == POISON).any():
            raise InjectedFault("poisoned row")
        return self.run(inputs)


@pytest.fixture(scope="module")
def predictor(zoo_bundle: Bundle) -> Predictor:
    return Predictor(zoo_bundle, engine="onnxruntime")


@contextmanager
def serve_faulty(
    predictor: Predictor, **config: object
) -> Iterator[tuple[TestClient, FaultyEngine]]:
    """The app in-process, once ready (its warm-up done)."""
    engine = FaultyEngine(type(predictor).outputs.__get__(predictor))
    predictor.outputs = engine  # type: ignore[method-assign]
    app = create_app(predictor, ServerConfig(model_name=MODEL, **config))  # type: ignore[arg-type]
    with TestClient(app) as client:
        wait_ready(client)
        yield client, engine


def wait_ready(client: TestClient, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while client.get("/v2/health/ready").status_code != 200:
        assert time.monotonic() < deadline, "the server did not get ready"
        time.sleep(0.02)


@pytest.fixture
def image() -> np.ndarray:
    return np.zeros((1, 3, 224, 224), dtype=np.float32) + 0.5


def infer(client: TestClient, pixels: np.ndarray) -> tuple[int, dict, dict]:
    body, headers = encode_infer_request({"input": pixels})
    response = client.post(INFER, content=body, headers=headers)
    document = (
        response.json() if response.headers["content-type"].startswith("application/json") else {}
    )
    return response.status_code, document, dict(response.headers)


def concurrently(calls: list[Callable[[], tuple]]) -> list[tuple]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def test_a_poisoned_item_fails_only_its_own_request(
    predictor: Predictor, image: np.ndarray
) -> None:
    poisoned = image.copy()
    poisoned[0, 0, 0, 0] = POISON
    with serve_faulty(predictor, max_batch=8, max_wait_ms=500) as (client, engine):
        engine.batches.clear()
        results = concurrently(
            [lambda: infer(client, image)] * 3 + [lambda: infer(client, poisoned)]
        )
        codes = sorted(code for code, _, _ in results)
        assert codes == [200, 200, 200, 500], results
        failed = next(doc for code, doc, _ in results if code == 500)
        assert "inference failed on this input" in failed["error"]
        assert engine.batches[0] == 4, "the four requests were not merged"
        assert client.get("/v2/health/ready").status_code == 200  # the engine is fine
        assert re.search(
            r'edgeft_inference_failures_total\{kind="request"\} 1\.0', client.get("/metrics").text
        )


def test_a_failed_worker_goes_not_ready_restarts_and_serves_again(
    predictor: Predictor, image: np.ndarray
) -> None:
    with serve_faulty(predictor) as (client, engine):
        assert infer(client, image)[0] == 200
        engine.broken.set()
        code, document, _ = infer(client, image)
        assert code == 500 and "inference failed" in document["error"]
        ready = client.get("/v2/health/ready")
        assert ready.status_code == 503 and "restarting" in ready.json()["reason"]
        assert infer(client, image)[0] == 503  # refused while not ready
        metrics = client.get("/metrics").text
        assert "edgeft_model_ready 0.0" in metrics
        assert re.search(r'edgeft_inference_failures_total\{kind="worker"\} 1\.0', metrics)
        engine.broken.clear()  # the next warm-up succeeds
        wait_ready(client)
        assert infer(client, image)[0] == 200
        assert "edgeft_model_ready 1.0" in client.get("/metrics").text


def test_a_full_queue_answers_503_with_retry_after_at_once(
    predictor: Predictor, image: np.ndarray
) -> None:
    with serve_faulty(predictor, max_batch=1, max_queue=2, queue_timeout_s=0.3) as (
        client,
        engine,
    ):
        engine.delay_s = 0.6
        started = time.monotonic()
        results = concurrently([lambda: infer(client, image)] * 6)
        engine.delay_s = 0.0
    errors = [doc["error"] for code, doc, _ in results if code == 503]
    assert sum(code == 200 for code, _, _ in results) >= 1
    assert any("queue is full" in e for e in errors), results
    assert any("queued longer than 0.3 s" in e for e in errors), results
    assert all(headers.get("retry-after") == "1" for code, _, headers in results if code == 503)
    assert time.monotonic() - started < 6 * 0.6, "refusals waited for the engine"


def test_the_warm_up_runs_before_ready(predictor: Predictor) -> None:
    with serve_faulty(predictor, max_batch=4) as (_, engine):
        assert engine.batches == [1, 4]  # batch sizes 1 and max_batch, before any request


def test_a_request_whose_client_left_is_never_run() -> None:
    release = threading.Event()
    rows: list[float] = []

    def engine(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        release.wait(10)
        rows.extend(inputs["x"][:, 0].tolist())
        return inputs["x"]

    async def scenario() -> None:
        batcher = DynamicBatcher(engine, max_batch=1, max_wait_s=0)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit({"x": np.ones((1, 1))}))
        await asyncio.sleep(0.1)  # the first is in the engine
        gone = asyncio.Event()
        second = asyncio.ensure_future(batcher.submit({"x": np.full((1, 1), 2.0)}, gone.wait))
        await asyncio.sleep(0.05)
        gone.set()
        with pytest.raises(ClientGone):
            await second
        release.set()
        assert (await first).tolist() == [[1.0]]
        await batcher.stop()

    asyncio.run(scenario())
    assert rows == [1.0], "the departed client's request reached the engine"

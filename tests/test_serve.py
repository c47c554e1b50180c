"""The inference server as a client sees it: a real `edgeft serve` process on loopback, called
with tritonclient, plain HTTP and a bounded load test."""

from __future__ import annotations

import asyncio
import io
import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data

from edgeft.bench.server_load import run_load
from edgeft.bench.server_process import ServerProcess, free_port
from edgeft.bundle import Bundle
from edgeft.errors import EdgeftError
from edgeft.runtime import Predictor
from edgeft.serve.batching import BatcherHooks, DynamicBatcher, merge_inputs
from edgeft.serve.protocol import encode_infer_request

CAT_LABELS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}
MODEL = "zoo-mobilenet"
TOKEN = "s3cret-token"


class Server(ServerProcess):
    def json(self, method: str, path: str, **kwargs: object) -> tuple[int, dict]:
        status, body = self.request(method, path, **kwargs)  # type: ignore[arg-type]
        return status, json.loads(body)

    def metrics(self) -> str:
        status, body = self.request("GET", "/metrics")
        assert status == 200
        return body.decode()


def start_server(bundle: Bundle, *extra: str, env: dict | None = None) -> Server:
    options = ["--model-name", MODEL, "--max-request-mb", "8", *extra]
    return Server(bundle.root, options, env=env).__enter__()


def stop_server(server: Server) -> str:
    """SIGTERM, as a service manager stops it: in-flight work finishes, then the process ends
    (uvicorn re-raises the signal after its graceful shutdown, so the status is -SIGTERM)."""
    status = server.stop()
    assert status in (0, -signal.SIGTERM), server.output
    assert "Application shutdown complete" in server.output, server.output
    assert "Traceback" not in server.output, server.output
    return server.output


GRPC_PORT = free_port()


@pytest.fixture(scope="module")
def server(zoo_bundle: Bundle) -> Iterator[Server]:
    running = start_server(
        zoo_bundle, "--engine", "onnxruntime", "--max-wait-ms", "5", "--grpc-port", str(GRPC_PORT)
    )
    yield running
    stop_server(running)


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _multipart(files: list[tuple[str, bytes]], field: str = "file") -> tuple[bytes, dict]:
    boundary = "edgeft-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + b"\r\n"
        for name, content in files
    ]
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_tritonclient_gets_the_same_probabilities_as_the_predictor(
    server: Server, zoo_bundle: Bundle
) -> None:
    import tritonclient.http as httpclient

    predictor = Predictor(zoo_bundle, engine="onnxruntime")
    images = predictor.encoder.encode([skimage_data.chelsea(), skimage_data.coffee()])["input"]
    expected = predictor.probabilities({"input": images})
    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.port}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    metadata = client.get_model_metadata(MODEL)
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 224, 224]}]
    assert metadata["outputs"][0]["shape"] == [-1, 1000]
    for binary, batch in ((True, images), (False, images[:1])):
        tensor = httpclient.InferInput("input", list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch, binary_data=binary)
        wanted = [httpclient.InferRequestedOutput("probabilities", binary_data=binary)]
        result = client.infer(MODEL, [tensor], outputs=wanted, request_id="r1")
        got = result.as_numpy("probabilities")
        assert got.shape == (len(batch), 1000), binary
        assert np.abs(got - expected[: len(batch)]).max() < 1e-5, binary
        assert result.get_response()["id"] == "r1"
    client.close()


def test_tritonclient_grpc_gets_the_same_probabilities(server: Server, zoo_bundle: Bundle) -> None:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    predictor = Predictor(zoo_bundle, engine="onnxruntime")
    images = predictor.encoder.encode([skimage_data.chelsea(), skimage_data.coffee()])["input"]
    expected = predictor.probabilities({"input": images})
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{GRPC_PORT}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    metadata = client.get_model_metadata(MODEL, as_json=True)
    assert metadata["inputs"] == [
        {"name": "input", "datatype": "FP32", "shape": ["-1", "3", "224", "224"]}
    ]
    tensor = grpcclient.InferInput("input", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images)
    result = client.infer(MODEL, [tensor], request_id="g1")
    assert np.abs(result.as_numpy("probabilities") - expected).max() < 1e-5
    assert result.get_response().id == "g1" and result.get_response().model_version == "1"
    bad = grpcclient.InferInput("input", [1, 3, 8, 8], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 3, 8, 8), dtype=np.float32))
    with pytest.raises(InferenceServerException, match="does not fit") as refused:
        client.infer(MODEL, [bad])
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT"
    with pytest.raises(InferenceServerException) as unknown:
        client.infer("resnet9000", [tensor])
    assert unknown.value.status() == "StatusCode.NOT_FOUND"
    client.close()


def test_v1_predict_takes_uploaded_images(server: Server) -> None:
    body, headers = _multipart(
        [("cat.png", _png(skimage_data.chelsea())), ("coffee.png", _png(skimage_data.coffee()))]
    )
    status, answer = server.json("POST", "/v1/predict?top_k=3", body=body, headers=headers)
    assert status == 200, answer
    cat, coffee = answer["predictions"]
    assert cat["label"] in CAT_LABELS and coffee["label"] not in CAT_LABELS
    assert len(cat["top_k"]) == 3 and cat["top_k"][0]["probability"] == cat["confidence"]
    status, raw = server.json(
        "POST", "/v1/predict", body=_png(skimage_data.chelsea()),
        headers={"Content-Type": "image/png"},
    )  # fmt: skip
    assert status == 200 and raw["predictions"][0]["label"] == cat["label"]


def _v2(tensor: dict, **document: object) -> bytes:
    return json.dumps({"inputs": [tensor], **document}).encode()


_IMAGE = {"name": "input", "datatype": "FP32", "shape": [1, 3, 224, 224]}
_PNG_HEAD = b"\x89PNG\r\n\x1a\n"
_INFER = f"/v2/models/{MODEL}/infer"
BAD_REQUESTS = {
    "corrupt image": ("/v1/predict", _PNG_HEAD + b"garbage" * 50, {}, 400, "not a readable image"),
    "truncated image": ("/v1/predict", "TRUNCATED", {}, 400, "not a readable image"),
    "empty body": ("/v1/predict", b"", {}, 400, "empty request"),
    "text upload": ("/v1/predict", "MULTIPART_TEXT", {}, 400, "not a readable image"),
    "no file field": ("/v1/predict", "MULTIPART_OTHER_FIELD", {}, 400, 'field "file"'),
    "bad top_k": ("/v1/predict?top_k=many", b"x", {}, 400, "top_k"),
    "not JSON": (_INFER, b"{inputs: nope", {}, 400, "not valid JSON"),
    "no inputs": (_INFER, b'{"outputs": []}', {}, 400, '"inputs" list'),
    "wrong name": (
        _INFER,
        _v2(_IMAGE | {"name": "pixels", "data": [0.0] * 150528}),
        {},
        400,
        "unknown: ['pixels']",
    ),
    "wrong shape": (
        _INFER,
        _v2(_IMAGE | {"shape": [1, 3, 8, 8], "data": [0.0] * 192}),
        {},
        400,
        "does not fit [-1, 3, 224, 224]",
    ),
    "wrong dtype": (
        _INFER,
        _v2(_IMAGE | {"datatype": "INT64", "data": [0] * 150528}),
        {},
        400,
        "the model takes FP32",
    ),
    "short data": (
        _INFER,
        _v2(_IMAGE | {"data": [0.0] * 10}),
        {},
        400,
        "more values than were sent",
    ),
    "unknown datatype": (
        _INFER,
        _v2(_IMAGE | {"datatype": "COMPLEX", "data": [1]}),
        {},
        400,
        "not supported",
    ),
    "bad binary header": (
        _INFER,
        b'{"inputs": []}',
        {"Inference-Header-Content-Length": "999"},
        400,
        "does not fit",
    ),
    "binary size lie": (_INFER, "BINARY_LIE", {}, 400, "binary data is shorter"),
    "unknown model": (
        "/v2/models/resnet9000/infer",
        _v2(_IMAGE),
        {},
        404,
        "unknown model 'resnet9000'",
    ),
    "oversized body": (_INFER, b"0" * (9 * 1024 * 1024), {}, 413, "larger than the server's limit"),
    # Found by trying it as a client would: each was a 500 or a long stall before.
    "UINT8 300, short": (
        _INFER,
        _v2(_IMAGE | {"datatype": "UINT8", "data": [300]}),
        {},
        400,
        "input 'input'",
    ),
    "UINT8 out of range": (
        _INFER,
        _v2({"name": "input", "shape": [1], "datatype": "UINT8", "data": [300]}),
        {},
        400,
        "outside UINT8's range 0..255",
    ),
    "INT64 beyond range": (
        _INFER,
        _v2({"name": "input", "shape": [1], "datatype": "INT64", "data": [2**70]}),
        {},
        400,
        "not all INT64 values",
    ),
    "float as integer": (
        _INFER,
        _v2({"name": "input", "shape": [1], "datatype": "INT64", "data": [1.5]}),
        {},
        400,
        "not all INT64 values",
    ),
    "bool as number": (
        _INFER,
        _v2({"name": "input", "shape": [1], "datatype": "FP32", "data": [True]}),
        {},
        400,
        "not all FP32 values",
    ),
    "NaN literal": (
        _INFER,
        b'{"inputs": [{"name": "input", "shape": [1], "datatype": "FP32", "data": [NaN]}]}',
        {},
        400,
        "NaN is not a JSON number",
    ),
    "deep nesting": (
        _INFER,
        b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        {},
        400,
        "nested too deeply",
    ),
    "parameters not an object": (
        _INFER,
        _v2(_IMAGE, parameters="x"),
        {},
        400,
        'request "parameters" must be an object',
    ),
    "tensor parameters not an object": (
        _INFER,
        _v2(_IMAGE | {"parameters": "x"}),
        {},
        400,
        "input 'input' \"parameters\" must be an object",
    ),
    "boolean in shape": (
        _INFER,
        _v2(_IMAGE | {"shape": [True, 3, 224, 224]}),
        {},
        400,
        "non-negative integers",
    ),
    "overflowing shape": (
        _INFER,
        _v2(_IMAGE | {"shape": [2**31 - 1] * 4, "data": [0.0]}),
        {},
        400,
        "more values than were sent",
    ),
    "unknown output": (
        _INFER,
        _v2(_IMAGE, outputs=[{"name": "logits"}]),
        {},
        400,
        "unknown output 'logits'",
    ),
    "outputs not a list": (
        _INFER,
        _v2(_IMAGE, outputs="probabilities"),
        {},
        400,
        '"outputs" must be a list',
    ),
    "id not a string": (_INFER, _v2(_IMAGE, id=5), {}, 400, '"id" must be a string'),
    "binary flag not a bool": (
        _INFER,
        _v2(_IMAGE, parameters={"binary_data_output": "yes"}),
        {},
        400,
        "binary_data_output must be true or false",
    ),
    "infinity in binary": (_INFER, "BINARY_INFINITY", {}, 400, "NaN or infinite values"),
    "more items than max_batch": (_INFER, "NINE_IMAGES", {}, 400, "over this server's limit of 8"),
    "BYTES to an image model": (
        _INFER,
        _v2({"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hi"]}),
        {},
        400,
        "this model takes no BYTES input",
    ),
    "unknown version": (
        f"/v2/models/{MODEL}/versions/7/infer",
        _v2(_IMAGE),
        {},
        404,
        "version '7' is not loaded",
    ),
    "thin PNG": ("/v1/predict", "THIN_PNG", {}, 400, "20000 x 1 is thinner than the limit"),
    "decompression bomb": ("/v1/predict", "HUGE_PNG", {}, 400, "over the limit of 40,000,000"),
    "too many uploads": ("/v1/predict", "NINE_UPLOADS", {}, 400, "more than 8 files"),
}


def _bad_body(body: bytes | str) -> tuple[bytes, dict]:
    if body == "TRUNCATED":
        return _png(skimage_data.chelsea())[:5000], {}
    if body == "MULTIPART_TEXT":
        return _multipart([("notes.txt", b"this is not an image")])
    if body == "MULTIPART_OTHER_FIELD":
        return _multipart([("cat.png", _png(skimage_data.chelsea()))], field="upload")
    if body in ("BINARY_INFINITY", "NINE_IMAGES"):
        images = np.zeros((9 if body == "NINE_IMAGES" else 1, 3, 224, 224), dtype=np.float32)
        images[0, 0, 0, 0] = np.inf if body == "BINARY_INFINITY" else 0.0
        return encode_infer_request({"input": images})
    if body == "THIN_PNG":  # 20000 x 1 in 138 bytes: the resize would make it 256 x 5,120,000
        return _png(np.zeros((1, 20000, 3), dtype=np.uint8)), {}
    if body == "HUGE_PNG":
        return _png(np.zeros((8000, 8000), dtype=np.uint8)), {}
    if body == "NINE_UPLOADS":
        return _multipart([(f"{i}.png", _png(skimage_data.chelsea())) for i in range(9)])
    if body == "BINARY_LIE":
        header = json.dumps({"inputs": [_IMAGE | {"parameters": {"binary_data_size": 602112}}]})
        return header.encode() + b"\0" * 100, {"Inference-Header-Content-Length": str(len(header))}
    assert isinstance(body, bytes)
    return body, {}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_a_clear_4xx(server: Server, case: str) -> None:
    path, body, headers, expected, message = BAD_REQUESTS[case]
    payload, extra = _bad_body(body)
    status, answer = server.json("POST", path, body=payload, headers=headers | extra)
    assert status == expected, answer
    assert message in answer["error"], answer


def test_the_server_keeps_serving_and_counts_errors(server: Server) -> None:
    assert server.request("POST", "/v1/predict", body=b"junk")[0] == 400
    status, answer = server.json(
        "POST",
        "/v1/predict",
        body=_png(skimage_data.chelsea()),
        headers={"Content-Type": "image/png"},
    )
    assert status == 200 and answer["predictions"][0]["label"] in CAT_LABELS
    metrics = server.metrics()
    assert re.search(
        r'edgeft_request_errors_total\{code="400",route="/v1/predict"\} [1-9]', metrics
    )
    assert 'code="500"' not in metrics
    assert re.search(
        r"edgeft_request_duration_seconds_count\{route=\"/v1/predict\"\} [1-9]", metrics
    )


def test_load_test_has_no_errors_and_batches_requests(server: Server, zoo_bundle: Bundle) -> None:
    predictor = Predictor(zoo_bundle, engine="onnxruntime")
    body, headers = encode_infer_request(predictor.encoder.encode([skimage_data.chelsea()]))
    before = _batch_counts(server.metrics())
    result = run_load(f"{server.url}{_INFER}", body, headers, 16, 20)
    assert result.requests == 320 and result.errors == 0, result.status_counts
    batches, single = (
        now - then for now, then in zip(_batch_counts(server.metrics()), before, strict=True)
    )
    assert batches - single > 0, "no batch of more than one request"
    assert batches < 320  # fewer engine calls than requests: requests were merged


def _batch_counts(metrics: str) -> tuple[float, float]:
    """(engine calls, calls with a single item) from the batch-size histogram."""
    count = float(re.search(r"^edgeft_batch_size_count (\S+)$", metrics, re.M).group(1))  # type: ignore[union-attr]
    single = float(
        re.search(r'^edgeft_batch_size_bucket\{le="1.0"\} (\S+)$', metrics, re.M).group(1)
    )  # type: ignore[union-attr]
    return count, single


def test_a_token_guards_everything_but_health(zoo_bundle: Bundle) -> None:
    guarded = start_server(
        zoo_bundle, "--token-env", "EDGEFT_TEST_TOKEN", env={"EDGEFT_TEST_TOKEN": TOKEN}
    )
    try:
        assert guarded.request("GET", "/v2/health/live")[0] == 200
        status, answer = guarded.json("GET", f"/v2/models/{MODEL}")
        assert status == 401 and "bearer token" in answer["error"]
        wrong = {"Authorization": "Bearer nope"}
        assert guarded.request("GET", f"/v2/models/{MODEL}", headers=wrong)[0] == 401
        right = {"Authorization": f"Bearer {TOKEN}"}
        assert guarded.request("GET", f"/v2/models/{MODEL}", headers=right)[0] == 200
        assert guarded.request("GET", "/metrics")[0] == 401
    finally:
        output = stop_server(guarded)
    assert TOKEN not in output


def test_pages_of_other_sites_cannot_drive_the_server(server: Server) -> None:
    """No token, bound to localhost: a browser on the box still must not let another site's
    page unload a model (a text/plain POST needs no preflight); the server's own page may."""
    unload = f"/v2/repository/models/{MODEL}/unload"
    evil = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
    status, answer = server.json("POST", unload, body=b"{}", headers=evil)
    assert status == 403 and "cross-origin" in answer["error"]
    assert server.json("GET", f"/v2/models/{MODEL}/ready")[0] == 200  # still loaded
    own = {"Origin": f"http://127.0.0.1:{server.port}", "Host": f"127.0.0.1:{server.port}"}
    assert server.request("POST", "/v2/repository/index", headers=own)[0] == 200


def test_an_unknown_prediction_id_is_not_echoed_whole(zoo_bundle: Bundle, tmp_path: Path) -> None:
    logged = start_server(zoo_bundle, "--log", str(tmp_path / "log.sqlite"))
    try:
        huge = json.dumps({"id": "x" * 1_000_000, "label": "tabby"}).encode()
        status, body = logged.request("POST", "/v1/feedback", body=huge)
        assert status == 400 and len(body) < 1000
        unknown = json.dumps({"id": "f" * 32, "label": "tabby"}).encode()
        status, body = logged.request("POST", "/v1/feedback", body=unknown)
        assert status == 404 and len(body) < 1000
    finally:
        stop_server(logged)


def test_a_second_canary_for_one_model_is_refused() -> None:
    from edgeft.serve.config import ServerConfig
    from edgeft.serve.traffic import parse_side_version

    sides = tuple(("canary", parse_side_version(s, canary=True)) for s in ("m@2:10", "m@3:5"))
    with pytest.raises(EdgeftError, match="two --canary versions for model 'm'"):
        ServerConfig("m", side_versions=sides)


def test_merge_pads_token_sequences_and_stacks_images() -> None:
    a = {"ids": np.array([[1, 2, 3]]), "mask": np.array([[1, 1, 1]])}
    b = {"ids": np.array([[4, 5], [6, 7]]), "mask": np.array([[1, 1], [1, 1]])}
    merged = merge_inputs([a, b])
    assert merged["ids"].tolist() == [[1, 2, 3], [4, 5, 0], [6, 7, 0]]
    assert merged["mask"].tolist() == [[1, 1, 1], [1, 1, 0], [1, 1, 0]]
    images = merge_inputs([{"x": np.ones((1, 3, 4, 4))}, {"x": np.zeros((2, 3, 4, 4))}])
    assert images["x"].shape == (3, 3, 4, 4)


def test_batcher_merges_concurrent_requests_and_returns_each_its_rows() -> None:
    sizes: list[int] = []

    async def scenario() -> list[np.ndarray]:
        batcher = DynamicBatcher(
            lambda inputs: inputs["x"] * 10, max_batch=4, max_wait_s=0.05,
            hooks=BatcherHooks(on_batch=lambda size, _: sizes.append(size)),
        )  # fmt: skip
        batcher.start()
        requests = [{"x": np.full((n, 2), i, dtype=np.float32)} for i, n in enumerate([1, 2, 1, 3])]
        results = await asyncio.gather(*(batcher.submit(r) for r in requests))
        await batcher.stop()
        return results

    results = asyncio.run(scenario())
    assert [r.tolist() for r in results] == [
        [[0, 0]],
        [[10, 10], [10, 10]],
        [[20, 20]],
        [[30, 30], [30, 30], [30, 30]],
    ]
    assert sizes == [4, 3]  # 1+2+1 fill the first batch; the 3 waits for the next

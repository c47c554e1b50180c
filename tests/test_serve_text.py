"""A text bundle behind `edgeft serve`: clients send strings (v2 BYTES, tokenized by the server)
or token tensors, and a token tensor the model cannot take fails only its own request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from edgeft.bench.server_process import ServerProcess
from edgeft.bundle import Bundle
from edgeft.runtime import Predictor
from edgeft.serve.protocol import encode_infer_request

MODEL = "tickets"
INFER = f"/v2/models/{MODEL}/infer"
TEXTS = ["the press keeps jamming", "please refund the late fee", "robot arm drops parts"]


@pytest.fixture(scope="module")
def text_server(text_bundle: Bundle) -> Iterator[ServerProcess]:
    options = ["--model-name", MODEL, "--engine", "onnxruntime", "--max-wait-ms", "200"]
    with ServerProcess(text_bundle.root, options) as server:
        yield server


def test_tritonclient_sends_strings_and_gets_the_predictors_probabilities(
    text_server: ServerProcess, text_bundle: Bundle
) -> None:
    import tritonclient.http as httpclient

    predictor = Predictor(text_bundle, engine="onnxruntime")
    expected = predictor.probabilities(predictor.encoder.encode(TEXTS))
    client = httpclient.InferenceServerClient(f"127.0.0.1:{text_server.port}")
    metadata = client.get_model_metadata(MODEL)
    assert metadata["parameters"]["bytes_input"] == {"name": "text", "datatype": "BYTES"}
    for binary in (True, False):
        tensor = httpclient.InferInput("text", [len(TEXTS)], "BYTES")
        tensor.set_data_from_numpy(np.array([t.encode() for t in TEXTS], dtype=object), binary)
        result = client.infer(MODEL, [tensor])
        assert np.abs(result.as_numpy("probabilities") - expected).max() < 1e-5, binary
    client.close()


def _tokens(predictor: Predictor, text: str, poison: int | None = None) -> dict[str, np.ndarray]:
    inputs = {k: v.copy() for k, v in predictor.encoder.encode([text]).items()}
    if poison is not None:
        inputs["input_ids"][0, 1] = poison
    return inputs


def test_a_token_id_outside_the_vocabulary_fails_only_its_own_request(
    text_server: ServerProcess, text_bundle: Bundle
) -> None:
    """Eight clients at once, within one --max-wait-ms batching window: the one whose token id
    is past the vocabulary (which would fail the engine call of the whole merged batch) is
    refused before it joins the batch, and the seven others are answered."""
    predictor = Predictor(text_bundle, engine="onnxruntime")
    vocabulary = predictor.encoder.vocab_size
    requests = [_tokens(predictor, TEXTS[i % 3]) for i in range(7)]
    requests.insert(3, _tokens(predictor, TEXTS[0], poison=vocabulary + 5))

    def send(inputs: dict[str, np.ndarray]) -> tuple[int, dict]:
        body, headers = encode_infer_request(inputs)
        status, answer = text_server.request("POST", INFER, body=body, headers=headers)
        return status, json.loads(answer) if status != 200 else {}

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, requests))
    assert [status for status, _ in results] == [200] * 3 + [400] + [200] * 4, results
    assert f"values must be in 0..{vocabulary - 1}" in results[3][1]["error"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"name": "text", "shape": [1], "datatype": "BYTES", "data": [5]}, "flat list of strings"),
        ({"name": "prose", "shape": [1], "datatype": "BYTES", "data": ["x"]}, "named 'text'"),
        (
            {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x" * 20_001]},
            "limit of 20000",
        ),
        ({"name": "text", "shape": [9], "datatype": "BYTES", "data": ["x"] * 9}, "limit of 8"),
    ],
)
def test_bad_text_requests_get_a_clear_400(
    text_server: ServerProcess, document: dict, message: str
) -> None:
    status, answer = text_server.request(
        "POST", INFER, body=json.dumps({"inputs": [document]}).encode()
    )
    assert status == 400 and message in json.loads(answer)["error"], answer


def test_too_many_tokens_are_refused(text_server: ServerProcess, text_bundle: Bundle) -> None:
    length = text_bundle.manifest.preprocessing.max_length + 1  # type: ignore[union-attr]
    ids = np.ones((1, length), dtype=np.int64)
    names = [spec.name for spec in text_bundle.manifest.inputs]
    body, headers = encode_infer_request({name: ids for name in names})
    status, answer = text_server.request("POST", INFER, body=body, headers=headers)
    assert status == 400 and f"the model takes at most {length - 1}" in json.loads(answer)["error"]

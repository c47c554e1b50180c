"""The v2 gRPC protocol held to REST's standard against a real `edgeft serve` process: the token
is checked before anything else, every bad request is INVALID_ARGUMENT naming its field (never
UNKNOWN, never a Python class), the repository extension answers as over REST, and
hypothesis-generated messages and raw bytes never get a server fault."""

from __future__ import annotations

import re
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritonclient.grpc import service_pb2

from edgeft.bundle import Bundle
from tests.test_serve import MODEL, Server, free_port, start_server, stop_server

TOKEN = "s3cret-grpc-token"
PYTHON_CLASS = re.compile(r"<class|[A-Za-z]+(Error|Exception)\b")
AUTH = (("authorization", f"Bearer {TOKEN}"),)
SERVICE = "/inference.GRPCInferenceService/"
# What a client's mistake may get; UNKNOWN and INTERNAL are server faults.
CLIENT_CODES = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.UNAVAILABLE,
}


class Channel:
    """Raw calls (bytes in, bytes out), so that a test can send what no client library would."""

    def __init__(self, port: int) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")

    def call(
        self, method: str, request: bytes, token: bool = True
    ) -> tuple[grpc.StatusCode, str, bytes]:
        stub = self.channel.unary_unary(SERVICE + method)
        try:
            answer = stub(request, metadata=AUTH if token else (), timeout=60)
        except grpc.RpcError as error:
            return error.code(), error.details() or "", b""
        return grpc.StatusCode.OK, "", answer


@pytest.fixture(scope="module")
def grpc_server(zoo_bundle: Bundle) -> Iterator[tuple[Server, Channel]]:
    port = free_port()
    running = start_server(
        zoo_bundle,
        "--engine", "onnxruntime", "--grpc-port", str(port), "--token-env", "EDGEFT_TEST_TOKEN",
        env={"EDGEFT_TEST_TOKEN": TOKEN},
    )  # fmt: skip
    channel = Channel(port)
    yield running, channel
    channel.channel.close()
    stop_server(running)


def _tensor(
    name: str = "input", datatype: str = "FP32", shape: tuple[int, ...] = (1, 3, 224, 224)
) -> service_pb2.ModelInferRequest.InferInputTensor:
    return service_pb2.ModelInferRequest.InferInputTensor(
        name=name, datatype=datatype, shape=list(shape)
    )


def _good_request() -> service_pb2.ModelInferRequest:
    pixels = np.zeros((1, 3, 224, 224), dtype=np.float32)
    return service_pb2.ModelInferRequest(
        model_name=MODEL, inputs=[_tensor()], raw_input_contents=[pixels.tobytes()]
    )


def _hostile() -> dict[str, tuple[bytes, str]]:
    """Requests that got UNKNOWN before, each with the field its answer must name."""
    two_raw = _good_request()
    two_raw.raw_input_contents.append(b"\0" * 16)
    fp16 = service_pb2.ModelInferRequest(model_name=MODEL, inputs=[_tensor(datatype="FP16")])
    typed = {
        kind: service_pb2.ModelInferRequest(model_name=MODEL, inputs=[_tensor(datatype=kind)])
        for kind in ("BF16", "UINT16", "UINT64")
    }
    bad_text = service_pb2.ModelInferRequest(
        model_name=MODEL, inputs=[_tensor(datatype="BYTES", shape=(1,))]
    )
    bad_text.inputs[0].contents.bytes_contents.append(b"\xff\xfe not utf-8")
    datatypes = {
        label: service_pb2.ModelInferRequest(
            model_name=MODEL,
            inputs=[_tensor(datatype=datatype)],
            raw_input_contents=[b"\0" * 8],
        )
        for label, datatype in (("empty", ""), ("garbage", "F\x00P?32"), ("1 MB", "X" * 2**20))
    }
    cases = {
        "two raw contents": (two_raw.SerializeToString(), "raw_input_contents"),
        "FP16 typed": (fp16.SerializeToString(), "raw_input_contents"),
        "invalid UTF-8": (bad_text.SerializeToString(), "bytes_contents"),
        "garbage bytes": (b"\x0a\xff\xff\xff\xff\x0f garbage", "ModelInferRequest"),
    }
    cases |= {f"{kind} typed": (r.SerializeToString(), "datatype") for kind, r in typed.items()}
    cases |= {f"{k} datatype": (r.SerializeToString(), "datatype") for k, r in datatypes.items()}
    return cases


def test_the_token_is_checked_before_the_request_is_read(
    grpc_server: tuple[Server, Channel],
) -> None:
    _, channel = grpc_server
    for case, (request, _) in _hostile().items():
        code, details, _ = channel.call("ModelInfer", request, token=False)
        assert code == grpc.StatusCode.UNAUTHENTICATED, (case, code, details)
    for method in ("ModelMetadata", "RepositoryIndex", "ServerMetadata"):
        code, _, _ = channel.call(method, b"\xff\xff garbage", token=False)
        assert code == grpc.StatusCode.UNAUTHENTICATED, method
    code, _, answer = channel.call("ServerLive", b"", token=False)  # as /v2/health/live
    assert code == grpc.StatusCode.OK and service_pb2.ServerLiveResponse.FromString(answer).live


def test_bad_requests_are_invalid_argument_naming_the_field(
    grpc_server: tuple[Server, Channel],
) -> None:
    _, channel = grpc_server
    for case, (request, field) in _hostile().items():
        code, details, _ = channel.call("ModelInfer", request)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (case, code, details)
        assert field in details, (case, details)
        assert not PYTHON_CLASS.search(details), (case, details)
        assert len(details) < 1000, case  # a 1 MB datatype is not echoed back
    code, details, _ = channel.call("ModelMetadata", b"\x0a\x05\xff\xff")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "ModelMetadataRequest" in details
    code, _, answer = channel.call("ModelInfer", _good_request().SerializeToString())
    assert code == grpc.StatusCode.OK
    response = service_pb2.ModelInferResponse.FromString(answer)
    assert response.outputs[0].shape == [1, 1000]


def test_the_repository_extension_it_advertises_answers(
    grpc_server: tuple[Server, Channel],
) -> None:
    _, channel = grpc_server
    code, _, answer = channel.call("ServerMetadata", b"")
    assert "model_repository" in service_pb2.ServerMetadataResponse.FromString(answer).extensions
    code, _, answer = channel.call("RepositoryIndex", b"")
    index = service_pb2.RepositoryIndexResponse.FromString(answer).models
    assert code == grpc.StatusCode.OK and [(m.name, m.state) for m in index] == [(MODEL, "READY")]
    unknown = service_pb2.RepositoryModelLoadRequest(model_name="nope").SerializeToString()
    assert channel.call("RepositoryModelLoad", unknown)[0] == grpc.StatusCode.NOT_FOUND
    assert channel.call("RepositoryModelLoad", unknown, token=False)[0] == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    named = service_pb2.RepositoryModelUnloadRequest(model_name=MODEL).SerializeToString()
    assert channel.call("RepositoryModelUnload", named)[0] == grpc.StatusCode.OK
    code, details, _ = channel.call("ModelInfer", _good_request().SerializeToString())
    assert code == grpc.StatusCode.NOT_FOUND and "unloaded" in details
    load = service_pb2.RepositoryModelLoadRequest(model_name=MODEL).SerializeToString()
    assert channel.call("RepositoryModelLoad", load)[0] == grpc.StatusCode.OK
    assert channel.call("ModelInfer", _good_request().SerializeToString())[0] == (
        grpc.StatusCode.OK
    )


DATATYPES = st.sampled_from(
    ["FP32", "FP16", "BF16", "INT64", "INT8", "UINT8", "UINT64", "BOOL", "BYTES", "", "fp32"]
) | st.text(max_size=20)
NAMES = st.sampled_from(["input", MODEL, ""]) | st.text(max_size=20)


@st.composite
def infer_requests(draw: st.DrawFn) -> bytes:
    """A ModelInferRequest of any shape a client could send: names, datatypes, shapes, typed
    and raw contents, mixed."""
    request = service_pb2.ModelInferRequest(
        model_name=draw(st.sampled_from([MODEL, MODEL, "other"]) | st.text(max_size=10)),
        model_version=draw(st.sampled_from(["", "1", "2"])),
        id=draw(st.text(max_size=10)),
    )
    for _ in range(draw(st.integers(0, 3))):
        tensor = request.inputs.add(
            name=draw(NAMES),
            datatype=draw(DATATYPES),
            shape=draw(st.lists(st.integers(-2, 300), max_size=5)),
        )
        contents = draw(st.sampled_from(["raw", "fp32", "int64", "bytes", "none"]))
        if contents == "raw":
            request.raw_input_contents.append(draw(st.binary(max_size=4096)))
        elif contents == "fp32":
            tensor.contents.fp32_contents.extend(draw(st.lists(st.floats(width=32), max_size=50)))
        elif contents == "int64":
            tensor.contents.int64_contents.extend(
                draw(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=50))
            )
        elif contents == "bytes":
            tensor.contents.bytes_contents.extend(
                draw(st.lists(st.binary(max_size=30), max_size=5))
            )
    for _ in range(draw(st.integers(0, 2))):
        request.outputs.add(name=draw(st.sampled_from(["probabilities", "x", ""])))
    if draw(st.booleans()) and request.raw_input_contents:
        request.raw_input_contents.append(draw(st.binary(max_size=64)))  # one too many
    return request.SerializeToString()


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["ModelInfer", "ModelMetadata", "ModelReady", "RepositoryIndex"]),
    request=infer_requests() | st.binary(max_size=256),
)
def test_no_generated_message_gets_a_server_fault(
    grpc_server: tuple[Server, Channel], method: str, request: bytes
) -> None:
    server, channel = grpc_server
    code, details, _ = channel.call(method, request)
    assert code in CLIENT_CODES, (code, details)
    assert not PYTHON_CLASS.search(details), details
    assert server.process.poll() is None  # still serving

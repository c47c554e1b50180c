"""The v2 inference protocol over gRPC, beside REST: Triton's and OVMS's clients speak gRPC
more than HTTP. Built on the protocol definitions that ship in tritonclient (its ``service_pb2``),
served by grpcio's asyncio server on the same event loop, models and batchers as REST.

Every call goes the same way: the token first (before the message is even decoded), then the
message decoded (bytes that are not one are INVALID_ARGUMENT, not a bare fault), then the call,
whose domain errors map to gRPC codes once, in ``GRPC_STATUS``. A ModelInfer request is turned
into the REST form (a JSON header and the raw tensors after it), so it meets exactly the same
checks. The repository extension (index, load, unload) is served as over REST.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message
from tritonclient.grpc import service_pb2

from edgeft import __version__
from edgeft.errors import EdgeftError, shown
from edgeft.serve.config import ServerConfig
from edgeft.serve.errors import (
    AccessoryDown,
    ClientGone,
    EngineFailure,
    Forbidden,
    NotFound,
    NotReady,
    Overloaded,
    Unauthenticated,
    lookup,
)
from edgeft.serve.limits import token_matches
from edgeft.serve.models import PREDICTION_IDS, LoadedModel, ServedModels, on_current
from edgeft.serve.protocol import ProtocolError, check_datatype, datatype_of, little_endian_bytes

log = logging.getLogger("edgeft.serve")
SERVICE = "inference.GRPCInferenceService"

# The one mapping of domain errors to gRPC codes (REST has its own in app).
GRPC_STATUS: dict[type[Exception], grpc.StatusCode] = {
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    NotFound: grpc.StatusCode.NOT_FOUND,
    ClientGone: grpc.StatusCode.CANCELLED,
    NotReady: grpc.StatusCode.UNAVAILABLE,
    AccessoryDown: grpc.StatusCode.UNAVAILABLE,
    Overloaded: grpc.StatusCode.UNAVAILABLE,
    EngineFailure: grpc.StatusCode.INTERNAL,
    EdgeftError: grpc.StatusCode.INVALID_ARGUMENT,  # ProtocolError and the client's other mistakes
}
_CONTENTS = {  # datatype -> the typed field of InferTensorContents
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def as_rest_body(request: service_pb2.ModelInferRequest) -> tuple[bytes, str]:
    """A gRPC infer request as the REST binary form: (body, header length). Only what a JSON
    header cannot carry is checked here (contents per datatype, text as UTF-8); the REST parser
    checks the rest."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise ProtocolError(
            f"raw_input_contents: {len(raw)} given for {len(request.inputs)} inputs (one each)"
        )
    tensors: list[dict[str, Any]] = []
    for i, tensor in enumerate(request.inputs):
        name = shown(tensor.name)
        check_datatype(tensor.datatype, f"inputs[{i}] {name}")
        document: dict[str, Any] = {
            "name": tensor.name,
            "shape": list(tensor.shape),
            "datatype": tensor.datatype,
        }
        if raw:
            document["parameters"] = {"binary_data_size": len(raw[i])}
        else:
            field = _CONTENTS.get(tensor.datatype)
            if field is None:
                raise ProtocolError(
                    f"inputs[{i}] {name}: {tensor.datatype} has no typed contents field; send it "
                    "in raw_input_contents"
                )
            values = list(getattr(tensor.contents, field))
            document["data"] = _texts(i, name, values) if field == "bytes_contents" else values
        tensors.append(document)
    header = {"inputs": tensors, "outputs": [{"name": o.name} for o in request.outputs]}
    if request.id:
        header["id"] = request.id
    encoded = json.dumps(header).encode()
    return encoded + b"".join(raw), str(len(encoded))


def _texts(index: int, name: str, values: list[bytes]) -> list[str]:
    try:
        return [v.decode("utf-8", errors="strict") for v in values]
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            f"inputs[{index}] {name}: contents.bytes_contents is not UTF-8 text ({exc.reason})"
        ) from None


@dataclass(frozen=True)
class _Undecodable:
    """Bytes that are not the message the method takes: answered INVALID_ARGUMENT after the
    token check, instead of grpcio's bare fault."""

    message: str


def _decoder(message_type: type[Message]) -> Callable[[bytes], Message | _Undecodable]:
    def decode(data: bytes) -> Message | _Undecodable:
        try:
            return message_type.FromString(data)
        except (DecodeError, ValueError):
            return _Undecodable(message_type.DESCRIPTOR.full_name)

    return decode


class InferenceService:
    """The v2 methods edgeft serves over ``models``; the others answer UNIMPLEMENTED."""

    OPEN = frozenset({"ServerLive", "ServerReady"})  # as /v2/health/*: no token

    def __init__(self, models: ServedModels, config: ServerConfig) -> None:
        self.models = models
        self.config = config

    async def ServerLive(self, request: Any) -> Any:
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any) -> Any:
        return service_pb2.ServerReadyResponse(ready=self.models.ready)

    async def ModelReady(self, request: Any) -> Any:
        slot = self.models.get_slot(request.name)
        serving = slot.serving_version(request.version or None)
        return service_pb2.ModelReadyResponse(
            ready=serving is not None and slot.not_ready_reason is None
        )

    async def ServerMetadata(self, request: Any) -> Any:
        return service_pb2.ServerMetadataResponse(
            name="edgeft", version=__version__, extensions=["model_repository"]
        )

    async def ModelMetadata(self, request: Any) -> Any:
        described = self.models.get(request.name, request.version or None).metadata()
        tensor = service_pb2.ModelMetadataResponse.TensorMetadata
        return service_pb2.ModelMetadataResponse(
            name=described["name"],
            versions=described["versions"],
            platform=described["platform"],
            inputs=[tensor(**t) for t in described["inputs"]],
            outputs=[tensor(**t) for t in described["outputs"]],
        )

    async def ModelInfer(self, request: Any) -> Any:
        body, header_length = as_rest_body(request) if request.inputs else (b"{}", None)

        async def on(model: LoadedModel) -> Any:
            parsed, answer = await model.infer(body, header_length)
            tensors = model.response_tensors(parsed, answer)
            tensor = service_pb2.ModelInferResponse.InferOutputTensor
            response = service_pb2.ModelInferResponse(
                model_name=model.name,
                model_version=model.version,
                id=parsed.id or "",
                outputs=[
                    tensor(name=name, datatype=datatype_of(array.dtype), shape=list(array.shape))
                    for name, array in tensors.items()
                ],
                raw_output_contents=[little_endian_bytes(array) for array in tensors.values()],
            )
            if answer.ids is not None:  # comma-separated, one per item, for /v1/feedback
                response.parameters[PREDICTION_IDS].string_param = ",".join(answer.ids)
            return response

        return await on_current(self.models, request.model_name, request.model_version or None, on)

    async def RepositoryIndex(self, request: Any) -> Any:
        index = service_pb2.RepositoryIndexResponse.ModelIndex
        rows = self.models.index()
        if request.ready:
            rows = [r for r in rows if r["state"] == "READY"]
        return service_pb2.RepositoryIndexResponse(
            models=[
                index(
                    name=r["name"],
                    version=r.get("version", ""),
                    state=r["state"],
                    reason=r.get("reason", ""),
                )
                for r in rows
            ]
        )

    async def RepositoryModelLoad(self, request: Any) -> Any:
        await self.models.load(request.model_name)
        return service_pb2.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, request: Any) -> Any:
        await self.models.unload(request.model_name)
        return service_pb2.RepositoryModelUnloadResponse()

    def handler(self) -> grpc.GenericRpcHandler:
        """grpcio's handler for every method above, each behind ``_call``."""
        methods = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods_by_name
        handlers = {}
        for name, method in methods.items():
            if not hasattr(self, name) or method.client_streaming or method.server_streaming:
                continue
            request_type = getattr(service_pb2, method.input_type.name)
            response_type = getattr(service_pb2, method.output_type.name)
            handlers[name] = grpc.unary_unary_rpc_method_handler(
                self._call(name, getattr(self, name)),
                request_deserializer=_decoder(request_type),
                response_serializer=response_type.SerializeToString,
            )
        return grpc.method_handlers_generic_handler(SERVICE, handlers)

    def _call(
        self, name: str, method: Callable[[Any], Awaitable[Any]]
    ) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
        """``method`` behind the token, on a decoded message, its errors as gRPC codes (never
        a bare fault for the client's mistake, never a Python class name)."""

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                if name not in self.OPEN and self.config.token:
                    given = dict(context.invocation_metadata() or ()).get("authorization")
                    if not token_matches(given, self.config.token):
                        raise Unauthenticated("missing or wrong bearer token")
                if isinstance(request, _Undecodable):
                    raise ProtocolError(
                        f"the request is not a valid {request.message} message (it does not parse)"
                    )
                return await method(request)
            except EdgeftError as exc:
                await context.abort(lookup(GRPC_STATUS, exc), str(exc))
            except Exception:
                log.exception("gRPC %s: internal error", name)
                await context.abort(
                    grpc.StatusCode.INTERNAL, "internal server error (see the server log)"
                )
            raise AssertionError("unreachable: abort raises")

        return call


async def start_grpc(models: ServedModels, config: ServerConfig, address: str) -> grpc.aio.Server:
    """A started gRPC server on ``address`` (host:port), sharing the REST server's models."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", config.max_request_bytes),
            ("grpc.max_concurrent_streams", config.max_connections),
        ]
    )
    server.add_generic_rpc_handlers((InferenceService(models, config).handler(),))
    if server.add_insecure_port(address) == 0:
        raise EdgeftError(f"cannot listen for gRPC on {address}")
    await server.start()
    log.info("v2 gRPC on %s", address)
    return server

"""The v2 inference protocol over gRPC, beside REST: Triton's and OVMS's clients speak gRPC
more than HTTP. Built on the protocol definitions that ship in tritonclient (its ``service_pb2``),
served by grpcio's asyncio server on the same event loop, models and batchers as REST.

A gRPC request is turned into the REST form (a JSON header and the raw tensors after it), so it
meets exactly the same checks; errors map to the status codes Triton uses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from starlette.exceptions import HTTPException
from tritonclient.grpc import service_pb2, service_pb2_grpc

from edgeft import __version__
from edgeft.errors import EdgeftError
from edgeft.serve.batching import EngineFailure, Overloaded
from edgeft.serve.config import ServerConfig
from edgeft.serve.limits import token_matches
from edgeft.serve.models import OUTPUT_NAME, PREDICTION_IDS, LoadedModel, ServedModels, on_current

log = logging.getLogger("edgeft.serve")
T = TypeVar("T")

_HTTP_TO_GRPC = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    503: grpc.StatusCode.UNAVAILABLE,
}
_CONTENTS = {  # datatype -> the typed field of InferTensorContents
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def as_rest_body(request: service_pb2.ModelInferRequest) -> tuple[bytes, str]:
    """A gRPC infer request as the REST binary form: (body, header length)."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise EdgeftError(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs")
    tensors: list[dict[str, Any]] = []
    for i, tensor in enumerate(request.inputs):
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
                raise EdgeftError(f"input {tensor.name!r}: send {tensor.datatype} as raw contents")
            values = list(getattr(tensor.contents, field))
            document["data"] = (
                [v.decode("utf-8", errors="strict") for v in values]
                if field == "bytes_contents"
                else values
            )
        tensors.append(document)
    header = {"inputs": tensors, "outputs": [{"name": o.name} for o in request.outputs]}
    if request.id:
        header["id"] = request.id
    encoded = json.dumps(header).encode()
    return encoded + b"".join(raw), str(len(encoded))


class InferenceService(service_pb2_grpc.GRPCInferenceServiceServicer):
    """ServerLive/Ready, ModelReady, Server/ModelMetadata and ModelInfer over ``models``."""

    def __init__(self, models: ServedModels, config: ServerConfig) -> None:
        self.models = models
        self.config = config

    async def ServerLive(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return service_pb2.ServerReadyResponse(ready=self.models.ready)

    async def ModelReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async def ready() -> Any:
            slot = self.models.get_slot(request.name)
            serving = slot.serving
            fits = serving is not None and request.version in ("", serving.version)
            return service_pb2.ModelReadyResponse(ready=fits and slot.not_ready_reason is None)

        return await self._answer(context, ready)

    async def ServerMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async def metadata() -> Any:
            return service_pb2.ServerMetadataResponse(
                name="edgeft", version=__version__, extensions=["model_repository"]
            )

        return await self._answer(context, metadata)

    async def ModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async def metadata() -> Any:
            described = self.models.get(request.name, request.version or None).metadata()
            tensor = service_pb2.ModelMetadataResponse.TensorMetadata
            return service_pb2.ModelMetadataResponse(
                name=described["name"],
                versions=described["versions"],
                platform=described["platform"],
                inputs=[tensor(**t) for t in described["inputs"]],
                outputs=[tensor(**t) for t in described["outputs"]],
            )

        return await self._answer(context, metadata)

    async def ModelInfer(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        body, header_length = as_rest_body(request) if request.inputs else (b"{}", None)

        async def infer() -> Any:
            async def on(model: LoadedModel) -> Any:
                parsed, answer = await model.infer(body, header_length)
                probabilities = answer.probabilities
                output = service_pb2.ModelInferResponse.InferOutputTensor(
                    name=OUTPUT_NAME, datatype="FP32", shape=list(probabilities.shape)
                )
                response = service_pb2.ModelInferResponse(
                    model_name=model.name,
                    model_version=model.version,
                    id=parsed.id or "",
                    outputs=[output],
                    raw_output_contents=[probabilities.astype("<f4").tobytes()],
                )
                if answer.ids is not None:  # comma-separated, one per item, for /v1/feedback
                    response.parameters[PREDICTION_IDS].string_param = ",".join(answer.ids)
                return response

            return await on_current(
                self.models, request.model_name, request.model_version or None, on
            )

        return await self._answer(context, infer)

    async def _answer(
        self, context: grpc.aio.ServicerContext, handle: Callable[[], Awaitable[T]]
    ) -> T:
        """``handle()`` behind the token, its errors as gRPC status codes (never a bare fault
        for the client's mistake)."""
        if self.config.token:
            given = dict(context.invocation_metadata() or ()).get("authorization")
            if not token_matches(given, self.config.token):
                await context.abort(
                    grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token"
                )
        try:
            return await handle()
        except HTTPException as exc:
            code = _HTTP_TO_GRPC.get(exc.status_code, grpc.StatusCode.INVALID_ARGUMENT)
            await context.abort(code, str(exc.detail))
        except Overloaded as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except EngineFailure as exc:
            await context.abort(grpc.StatusCode.INTERNAL, str(exc))
        except EdgeftError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        raise AssertionError("unreachable: abort raises")


async def start_grpc(models: ServedModels, config: ServerConfig, address: str) -> grpc.aio.Server:
    """A started gRPC server on ``address`` (host:port), sharing the REST server's models."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", config.max_request_bytes),
            ("grpc.max_concurrent_streams", config.max_connections),
        ]
    )
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceService(models, config), server
    )
    if server.add_insecure_port(address) == 0:
        raise EdgeftError(f"cannot listen for gRPC on {address}")
    await server.start()
    log.info("v2 gRPC on %s", address)
    return server

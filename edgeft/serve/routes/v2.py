"""The KServe v2 (Open Inference Protocol) inference routes: server and model metadata, model
readiness and ``infer``, JSON or binary tensors.

The body is read once, before any model sees it, so a request re-run after a hot swap
(``on_current``) sees the same bytes. The health probes are in ``monitoring``, the repository
extension in ``repository``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response

from edgeft import __version__
from edgeft.serve.models import PREDICTION_IDS, LoadedModel, on_current
from edgeft.serve.openapi import INFER_REQUEST_SCHEMA, RESPONSES
from edgeft.serve.protocol import HEADER_LENGTH, encode_infer_response
from edgeft.serve.routes import ServeState, disconnected

INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": INFER_REQUEST_SCHEMA}},
    }
}


def register(app: FastAPI, state: ServeState) -> None:
    """Adds the v2 inference routes over ``state`` to ``app``."""
    models, guarded = state.models, state.guarded

    @app.get("/v2", dependencies=guarded, responses=RESPONSES)
    def server_metadata() -> dict[str, Any]:
        return {
            "name": "edgeft",
            "version": __version__,
            "extensions": ["binary_tensor_data", "model_repository"],
        }

    @app.get("/v2/models/{name}", dependencies=guarded, responses=RESPONSES)
    @app.get("/v2/models/{name}/versions/{version}", dependencies=guarded, responses=RESPONSES)
    def model_metadata(name: str, version: str | None = None) -> dict[str, Any]:
        return models.get(name, version).metadata()

    @app.get("/v2/models/{name}/ready", dependencies=guarded, responses=RESPONSES)
    @app.get(
        "/v2/models/{name}/versions/{version}/ready", dependencies=guarded, responses=RESPONSES
    )
    def model_ready(name: str, version: str | None = None) -> JSONResponse:
        slot = models.get_slot(name)
        slot.serving_version(version)
        reason = slot.not_ready_reason
        if reason is None:
            return JSONResponse({"name": name, "ready": True})
        return JSONResponse({"name": name, "ready": False, "reason": reason}, status_code=503)

    @app.post(
        "/v2/models/{name}/infer",
        dependencies=guarded,
        openapi_extra=INFER_BODY,
        responses=RESPONSES,
    )
    @app.post(
        "/v2/models/{name}/versions/{version}/infer",
        dependencies=guarded,
        openapi_extra=INFER_BODY,
        responses=RESPONSES,
    )
    async def infer(name: str, request: Request, version: str | None = None) -> Response:
        body = await request.body()
        header_length = request.headers.get(HEADER_LENGTH)

        async def on(model: LoadedModel) -> Response:
            parsed, answer = await model.infer(body, header_length, disconnected(request))
            models.shadow_copy(model, body, header_length, answer.probabilities)
            content, headers = encode_infer_response(
                name,
                model.version,
                parsed.id,
                model.response_tensors(parsed, answer),
                parsed.binary_outputs,
                None if answer.ids is None else {PREDICTION_IDS: answer.ids},
            )
            media = "application/octet-stream" if parsed.binary_outputs else "application/json"
            return Response(content, headers=headers, media_type=media)

        return await on_current(models, name, version, on)

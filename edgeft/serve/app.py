"""The HTTP routes: KServe v2 (Open Inference Protocol), ``/v1/predict`` and ``/metrics``.

A thin layer: requests are decoded and validated here, encoded by the bundle's own encoder and
answered through the dynamic batcher. Client mistakes are 4xx with ``{"error": ...}``, never 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from edgeft import __version__
from edgeft.errors import EdgeftError
from edgeft.runtime import Predictor
from edgeft.serve.batching import DynamicBatcher
from edgeft.serve.config import ServerConfig
from edgeft.serve.limits import BodySizeLimitMiddleware, token_matches
from edgeft.serve.metrics import RequestMetricsMiddleware, ServerMetrics
from edgeft.serve.protocol import (
    HEADER_LENGTH,
    ProtocolError,
    encode_infer_response,
    parse_infer_request,
    tensor_metadata,
)

log = logging.getLogger("edgeft.serve")

OUTPUT_NAME = "probabilities"
PLATFORMS = {"onnxruntime": "onnxruntime_onnx", "openvino": "openvino"}
MAX_UPLOADS = 64


def create_app(predictor: Predictor, config: ServerConfig) -> FastAPI:
    """A ready-to-run ASGI app serving ``predictor`` under ``config.model_name``."""
    metrics = ServerMetrics()
    batcher = DynamicBatcher(
        predictor.probabilities, config.max_batch, config.max_wait_ms / 1000, metrics.record_batch
    )
    state: dict[str, Any] = {"ready": False, "reason": "starting"}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        reason = (
            await run_in_threadpool(_validation_failure, predictor) if config.validate else None
        )
        batcher.start()
        state.update(ready=reason is None, reason=reason)
        if reason:
            log.error("not ready: %s", reason)
        yield
        state["ready"] = False
        await batcher.stop()

    def authorised(request: Request) -> None:
        if config.token and not token_matches(request.headers.get("authorization"), config.token):
            raise HTTPException(401, "missing or wrong bearer token")

    app = FastAPI(title="edgeft", version=__version__, lifespan=lifespan)
    guarded = [Depends(authorised)]
    _install_error_handlers(app)

    def known_model(name: str) -> None:
        if name != config.model_name:
            raise HTTPException(
                404, f"unknown model {name!r}; this server has {config.model_name!r}"
            )

    @app.get("/v2/health/live")
    def live() -> dict[str, bool]:
        return {"live": True}

    def readiness(extra: dict[str, Any]) -> JSONResponse:
        body = extra | {"ready": state["ready"]}
        if not state["ready"]:
            body["reason"] = state["reason"]
        return JSONResponse(body, status_code=200 if state["ready"] else 503)

    def require_ready() -> None:
        if not state["ready"]:
            raise HTTPException(503, f"model not ready: {state['reason']}")

    @app.get("/v2/health/ready")
    def ready() -> JSONResponse:
        return readiness({})

    @app.get("/v2", dependencies=guarded)
    def server_metadata() -> dict[str, Any]:
        return {"name": "edgeft", "version": __version__, "extensions": ["binary_tensor_data"]}

    @app.get("/v2/models/{name}", dependencies=guarded)
    @app.get("/v2/models/{name}/versions/{version}", dependencies=guarded)
    def model_metadata(name: str) -> dict[str, Any]:
        known_model(name)
        manifest = predictor.bundle.manifest
        scheme = predictor.model.int8_scheme
        return {
            "name": name,
            "versions": ["1"],
            "platform": PLATFORMS[predictor.model.engine],
            "inputs": [tensor_metadata(spec) for spec in manifest.inputs],
            "outputs": [
                {"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, len(predictor.labels)]}
            ],
            "parameters": {
                "precision": predictor.model.precision,
                "int8_scheme": scheme.key if scheme else None,
                "targets": predictor.model.targets,
                "task": manifest.task,
                "labels": predictor.labels,
            },
        }

    @app.get("/v2/models/{name}/ready", dependencies=guarded)
    @app.get("/v2/models/{name}/versions/{version}/ready", dependencies=guarded)
    def model_ready(name: str) -> JSONResponse:
        known_model(name)
        return readiness({"name": name})

    @app.post("/v2/models/{name}/infer", dependencies=guarded)
    @app.post("/v2/models/{name}/versions/{version}/infer", dependencies=guarded)
    async def infer(name: str, request: Request) -> Response:
        known_model(name)
        require_ready()
        parsed = parse_infer_request(
            await request.body(),
            request.headers.get(HEADER_LENGTH),
            predictor.bundle.manifest.inputs,
        )
        probabilities = await batcher.submit(parsed.inputs)
        body, headers = encode_infer_response(
            name, parsed.id, OUTPUT_NAME, probabilities, parsed.binary_outputs
        )
        media = "application/octet-stream" if parsed.binary_outputs else "application/json"
        return Response(body, headers=headers, media_type=media)

    @app.post("/v1/predict", dependencies=guarded)
    async def predict(request: Request, top_k: int = config.top_k) -> dict[str, Any]:
        require_ready()
        items = await _predict_items(request, predictor.bundle.manifest.task)
        inputs = await run_in_threadpool(predictor.encoder.encode, items)
        probabilities = await batcher.submit(inputs)
        return {
            "model_name": config.model_name,
            "predictions": [
                {
                    "label": p.label,
                    "confidence": p.confidence,
                    "top_k": [{"label": label, "probability": q} for label, q in p.top_k],
                }
                for p in predictor.rank(probabilities, top_k)
            ],
        }

    @app.get("/metrics", dependencies=guarded)
    def prometheus() -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4")

    app.add_middleware(BodySizeLimitMiddleware, max_bytes=config.max_request_bytes)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)  # outermost: sees 413s too
    return app


def _validation_failure(predictor: Predictor) -> str | None:
    """``edgeft validate`` on the served model (recorded beside the bundle); why it failed."""
    from edgeft.runtime.validation import validate_bundle, write_validation_record

    try:
        report = validate_bundle(predictor.bundle, models=[predictor.model])
    except EdgeftError as exc:
        return f"validation could not run: {exc}"
    try:
        write_validation_record(report)
    except OSError as exc:  # a read-only bundle location: the verdict still holds
        log.warning("validation passed but could not be recorded: %s", exc)
    return "; ".join(report.failures()) or None


async def _predict_items(request: Request, task: str) -> list[Any]:
    """The uploaded images (multipart ``file`` fields or a raw image body) or JSON texts."""
    content_type = request.headers.get("content-type", "")
    if task == "text-classification":
        if not content_type.startswith("application/json"):
            raise ProtocolError('send JSON: {"text": "..."} or {"texts": ["...", ...]}')
        try:
            document = json.loads(await request.body())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ProtocolError(f"request body is not valid JSON ({exc})") from exc
        if isinstance(document, dict) and "text" in document:
            document = {"texts": [document["text"]]}
        texts = document.get("texts") if isinstance(document, dict) else None
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise ProtocolError('send {"text": "..."} or a non-empty {"texts": [...]} of strings')
        return texts
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=MAX_UPLOADS, max_fields=MAX_UPLOADS)
        except HTTPException as exc:
            raise ProtocolError(f"malformed multipart upload ({exc.detail})") from exc
        files = [f for f in form.getlist("file") if isinstance(f, UploadFile)]
        if not files:
            raise ProtocolError('upload the image(s) as multipart field "file"')
        return [await f.read() for f in files]
    body = await request.body()
    if not body:
        raise ProtocolError('empty request: upload an image (multipart field "file" or raw body)')
    return [body]


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EdgeftError)
    async def user_error(_: Request, exc: EdgeftError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(
            {"error": str(exc.detail)}, status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_parameters(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"error": problems}, status_code=400)

    @app.exception_handler(Exception)
    async def server_fault(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error", exc_info=exc)
        return JSONResponse({"error": "internal server error (see the server log)"}, 500)

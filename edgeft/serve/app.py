"""The HTTP routes: KServe v2 (Open Inference Protocol), ``/v1/predict`` and ``/metrics``.

A thin layer: requests are decoded and validated here, encoded by the bundle's own encoder and
answered through the dynamic batcher. Client mistakes are 4xx with ``{"error": ...}``, never
500; overload is 503 with ``Retry-After``; 500 is kept for the server's own faults.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from edgeft import __version__
from edgeft.errors import EdgeftError
from edgeft.runtime import Predictor
from edgeft.serve.batching import (
    BatcherHooks,
    ClientGone,
    DynamicBatcher,
    EngineFailure,
    Overloaded,
)
from edgeft.serve.config import ServerConfig
from edgeft.serve.limits import BodySizeLimitMiddleware, token_matches
from edgeft.serve.metrics import RequestMetricsMiddleware, ServerMetrics
from edgeft.serve.openapi import INFER_REQUEST_SCHEMA, PREDICT_REQUEST_BODY, RESPONSES
from edgeft.serve.protocol import (
    BYTES,
    HEADER_LENGTH,
    ModelSignature,
    ProtocolError,
    encode_infer_response,
    load_json,
    parse_infer_request,
    tensor_metadata,
)

log = logging.getLogger("edgeft.serve")

OUTPUT_NAME = "probabilities"
TEXT_INPUT = "text"
MODEL_VERSION = "1"
PLATFORMS = {"onnxruntime": "onnxruntime_onnx", "openvino": "openvino"}


def create_app(predictor: Predictor, config: ServerConfig) -> FastAPI:
    """A ready-to-run ASGI app serving ``predictor`` under ``config.model_name``."""
    metrics = ServerMetrics()
    manifest = predictor.bundle.manifest
    text = manifest.task == "text-classification"
    signature = ModelSignature(
        inputs=manifest.inputs,
        output=OUTPUT_NAME,
        max_batch=config.max_batch,
        text_input=TEXT_INPUT if text else None,
        max_text_chars=config.max_text_chars,
    )
    batcher = DynamicBatcher(
        predictor.probabilities,
        config.max_batch,
        config.max_wait_ms / 1000,
        max_queue=config.max_queue,
        queue_timeout_s=config.queue_timeout_s,
        hooks=BatcherHooks(
            on_batch=metrics.record_batch,
            on_failure=metrics.record_failure,
            warm_up=lambda: predictor.warm_up((1, config.max_batch)),
        ),
    )
    state: dict[str, Any] = {"validated": False, "reason": "starting"}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        reason = (
            await run_in_threadpool(_validation_failure, predictor) if config.validate else None
        )
        state.update(validated=reason is None, reason=reason)
        if reason:
            log.error("not ready: %s", reason)
        batcher.start()
        yield
        state.update(validated=False, reason="shutting down")
        await batcher.stop()

    def is_ready() -> bool:
        return state["validated"] and batcher.healthy

    def not_ready_reason() -> str:
        if not state["validated"]:
            return state["reason"]
        return "the model is warming up" if batcher.restarts == 0 else "the engine is restarting"

    def authorised(request: Request) -> None:
        if config.token and not token_matches(request.headers.get("authorization"), config.token):
            raise HTTPException(401, "missing or wrong bearer token")

    guarded = [Depends(authorised)]
    app = FastAPI(
        title="edgeft",
        version=__version__,
        lifespan=lifespan,
        openapi_url=None,  # served below, behind the token; no /docs (its page loads from a CDN)
        docs_url=None,
        redoc_url=None,
    )
    _install_error_handlers(app)
    metrics.ready_probe(is_ready, lambda: batcher.queued_items)

    def known_model(name: str) -> None:
        if name != config.model_name:
            raise HTTPException(
                404, f"unknown model {name!r}; this server has {config.model_name!r}"
            )

    def known_version(version: str | None) -> None:
        if version is not None and version != MODEL_VERSION:
            raise HTTPException(
                404, f"unknown version {version!r}; this server has {MODEL_VERSION!r}"
            )

    @app.get("/openapi.json", dependencies=guarded, include_in_schema=False)
    def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/v2/health/live")
    def live() -> dict[str, bool]:
        return {"live": True}

    def readiness(extra: dict[str, Any]) -> JSONResponse:
        ready = is_ready()
        body = extra | {"ready": ready}
        if not ready:
            body["reason"] = not_ready_reason()
        return JSONResponse(body, status_code=200 if ready else 503)

    def require_ready() -> None:
        if not is_ready():
            raise HTTPException(503, f"model not ready: {not_ready_reason()}")

    @app.get("/v2/health/ready")
    def ready() -> JSONResponse:
        return readiness({})

    @app.get("/v2", dependencies=guarded, responses=RESPONSES)
    def server_metadata() -> dict[str, Any]:
        return {"name": "edgeft", "version": __version__, "extensions": ["binary_tensor_data"]}

    @app.get("/v2/models/{name}", dependencies=guarded, responses=RESPONSES)
    @app.get("/v2/models/{name}/versions/{version}", dependencies=guarded, responses=RESPONSES)
    def model_metadata(name: str, version: str | None = None) -> dict[str, Any]:
        known_model(name)
        known_version(version)
        scheme = predictor.model.int8_scheme
        return {
            "name": name,
            "versions": [MODEL_VERSION],
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
                "max_batch_size": config.max_batch,
                **({"bytes_input": {"name": TEXT_INPUT, "datatype": BYTES}} if text else {}),
            },
        }

    @app.get("/v2/models/{name}/ready", dependencies=guarded, responses=RESPONSES)
    @app.get(
        "/v2/models/{name}/versions/{version}/ready", dependencies=guarded, responses=RESPONSES
    )
    def model_ready(name: str, version: str | None = None) -> JSONResponse:
        known_model(name)
        known_version(version)
        return readiness({"name": name})

    infer_body = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": INFER_REQUEST_SCHEMA}},
        }
    }

    @app.post(
        "/v2/models/{name}/infer",
        dependencies=guarded,
        openapi_extra=infer_body,
        responses=RESPONSES,
    )
    @app.post(
        "/v2/models/{name}/versions/{version}/infer",
        dependencies=guarded,
        openapi_extra=infer_body,
        responses=RESPONSES,
    )
    async def infer(name: str, request: Request, version: str | None = None) -> Response:
        known_model(name)
        known_version(version)
        require_ready()
        parsed = await run_in_threadpool(
            parse_infer_request,
            await request.body(),
            request.headers.get(HEADER_LENGTH),
            signature,
        )
        if parsed.texts is not None:
            inputs = await run_in_threadpool(predictor.encoder.encode, parsed.texts)
        else:
            predictor.encoder.check(parsed.inputs)
            inputs = parsed.inputs
        probabilities = await batcher.submit(inputs, _disconnected(request))
        body, headers = encode_infer_response(
            name,
            MODEL_VERSION,
            parsed.id,
            OUTPUT_NAME,
            _finite(probabilities),
            parsed.binary_outputs,
        )
        media = "application/octet-stream" if parsed.binary_outputs else "application/json"
        return Response(body, headers=headers, media_type=media)

    @app.post(
        "/v1/predict",
        dependencies=guarded,
        openapi_extra={"requestBody": PREDICT_REQUEST_BODY},
        responses=RESPONSES,
    )
    async def predict(request: Request, top_k: int = config.top_k) -> dict[str, Any]:
        require_ready()
        items = await _predict_items(request, manifest.task, config)
        inputs = await run_in_threadpool(predictor.encoder.encode, items)
        probabilities = _finite(await batcher.submit(inputs, _disconnected(request)))
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

    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=config.max_request_bytes,
        timeout_s=config.body_timeout_s,
    )
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


async def _disconnected(request: Request) -> None:
    """Completes when the client closes its connection (the body has been read by then)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _finite(probabilities: np.ndarray) -> np.ndarray:
    """Inputs far outside what the model saw can overflow it; that is the input's fault."""
    if not np.isfinite(probabilities).all():
        raise ProtocolError(
            "the model's output is not finite for this input; are its values in the range the "
            "model was trained on?"
        )
    return probabilities


async def _predict_items(request: Request, task: str, config: ServerConfig) -> list[Any]:
    """The uploaded images (multipart ``file`` fields or a raw image body) or JSON texts."""
    content_type = request.headers.get("content-type", "")
    if task == "text-classification":
        if not content_type.startswith("application/json"):
            raise ProtocolError('send JSON: {"text": "..."} or {"texts": ["...", ...]}')
        document = load_json(await request.body())
        if isinstance(document, dict) and "text" in document:
            document = {"texts": [document["text"]]}
        texts = document.get("texts") if isinstance(document, dict) else None
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise ProtocolError('send {"text": "..."} or a non-empty {"texts": [...]} of strings')
        if max(len(t) for t in texts) > config.max_text_chars:
            raise ProtocolError(f"a text is over the limit of {config.max_text_chars} characters")
        return _at_most(texts, config.max_batch)
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=config.max_batch, max_fields=config.max_batch)
        except HTTPException as exc:
            raise ProtocolError(
                f"malformed multipart upload, or more than {config.max_batch} files ({exc.detail})"
            ) from exc
        files = [f for f in form.getlist("file") if isinstance(f, UploadFile)]
        if not files:
            raise ProtocolError('upload the image(s) as multipart field "file"')
        return [await f.read() for f in files]
    body = await request.body()
    if not body:
        raise ProtocolError('empty request: upload an image (multipart field "file" or raw body)')
    return [body]


def _at_most(items: list[Any], limit: int) -> list[Any]:
    if len(items) > limit:
        raise ProtocolError(
            f"{len(items)} items is over this server's limit of {limit} per request"
        )
    return items


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EdgeftError)
    async def user_error(_: Request, exc: EdgeftError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(Overloaded)
    async def overloaded(_: Request, exc: Overloaded) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after_s)}
        return JSONResponse({"error": str(exc)}, status_code=503, headers=headers)

    @app.exception_handler(EngineFailure)
    async def engine_failure(_: Request, exc: EngineFailure) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=500)

    @app.exception_handler(ClientGone)
    async def client_gone(_: Request, exc: ClientGone) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=499)  # nginx's "client closed"

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

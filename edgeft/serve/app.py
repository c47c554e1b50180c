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

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response

from edgeft import __version__
from edgeft.errors import EdgeftError
from edgeft.monitor.prediction_log import PredictionLog, UnknownPrediction
from edgeft.repository import ModelRepository
from edgeft.runtime import Predictor
from edgeft.serve.batching import ClientGone, EngineFailure, Overloaded
from edgeft.serve.config import ServerConfig
from edgeft.serve.limits import BodySizeLimitMiddleware, token_matches
from edgeft.serve.live_monitor import LiveMonitor
from edgeft.serve.metrics import RequestMetricsMiddleware, ServerMetrics
from edgeft.serve.models import (
    OUTPUT_NAME,
    PREDICTION_IDS,
    LoadedModel,
    PredictorFactory,
    ServedModels,
    on_current,
    production_versions,
)
from edgeft.serve.openapi import (
    FEEDBACK_REQUEST_BODY,
    INFER_REQUEST_SCHEMA,
    PREDICT_REQUEST_BODY,
    RESPONSES,
)
from edgeft.serve.protocol import (
    HEADER_LENGTH,
    ProtocolError,
    encode_infer_response,
    load_json,
)
from edgeft.serve.status_page import render_status_page

log = logging.getLogger("edgeft.serve")


def create_app(
    source: Predictor | ModelRepository,
    config: ServerConfig,
    factory: PredictorFactory | None = None,
) -> FastAPI:
    """A ready-to-run ASGI app serving one predictor (as ``config.model_name``, version 1) or
    every model of a repository, each at its ``production`` version, following alias moves
    (``factory`` opens a version's bundle folder the way the command line asked)."""
    metrics = ServerMetrics()
    prediction_log = PredictionLog(config.log, config.log_limits) if config.log else None
    if isinstance(source, ModelRepository):
        if factory is None:
            raise EdgeftError("serving a repository needs a predictor factory")
        models = ServedModels(
            config,
            metrics,
            lambda: production_versions(source),
            factory,
            follow=True,
            locate=lambda name, version: source.version(name, int(version)).path,
            side_versions=config.side_versions,
            log=prediction_log,
        )
    else:
        root = source.bundle.root
        models = ServedModels(
            config,
            metrics,
            lambda: {config.model_name: ("1", root)},
            lambda _: source,
            False,
            log=prediction_log,
        )
    monitor = (
        None
        if prediction_log is None
        else LiveMonitor(
            models, prediction_log, metrics, config.monitor_window, config.monitor_interval_s
        )
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await models.start()
        if monitor is not None:
            monitor.start()
        grpc_server = None
        if config.grpc_address:
            from edgeft.serve.grpc_server import start_grpc

            grpc_server = await start_grpc(models, config, config.grpc_address)
        yield
        if grpc_server is not None:
            await grpc_server.stop(grace=5)
        await models.stop()
        if monitor is not None:
            await monitor.stop()
        if prediction_log is not None:
            await run_in_threadpool(prediction_log.close)

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
    metrics.ready_probe(lambda: models.ready, models.queued_items)

    @app.get("/", dependencies=guarded, include_in_schema=False)
    def status_page() -> HTMLResponse:
        return HTMLResponse(render_status_page(models, metrics, monitor, prediction_log))

    @app.post(
        "/v1/feedback",
        dependencies=guarded,
        openapi_extra={"requestBody": FEEDBACK_REQUEST_BODY},
        responses=RESPONSES,
    )
    async def feedback(request: Request) -> dict[str, str]:
        if prediction_log is None:
            raise HTTPException(404, "this server keeps no prediction log (serve --log DB)")
        document = load_json(await request.body())
        if (
            not isinstance(document, dict)
            or not isinstance(document.get("id"), str)
            or not isinstance(document.get("label"), str)
        ):
            raise ProtocolError('send {"id": "<a prediction id>", "label": "<class>"}')
        try:
            await run_in_threadpool(prediction_log.feedback, document["id"], document["label"])
        except UnknownPrediction as exc:
            raise HTTPException(404, str(exc)) from exc
        return {"id": document["id"], "label": document["label"]}

    @app.get("/openapi.json", dependencies=guarded, include_in_schema=False)
    def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/v2/health/live")
    def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    def ready() -> JSONResponse:
        reasons = models.not_ready_reasons()
        if not reasons:
            return JSONResponse({"ready": True})
        reason = "; ".join(f"{name}: {why}" for name, why in reasons.items())
        return JSONResponse({"ready": False, "reason": reason}, status_code=503)

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
        body = await request.body()
        header_length = request.headers.get(HEADER_LENGTH)

        async def on(model: LoadedModel) -> Response:
            parsed, answer = await model.infer(body, header_length, _disconnected(request))
            models.shadow_copy(model, body, header_length, answer.probabilities)
            content, headers = encode_infer_response(
                name,
                model.version,
                parsed.id,
                OUTPUT_NAME,
                answer.probabilities,
                parsed.binary_outputs,
                None if answer.ids is None else {PREDICTION_IDS: answer.ids},
            )
            media = "application/octet-stream" if parsed.binary_outputs else "application/json"
            return Response(content, headers=headers, media_type=media)

        return await on_current(models, name, version, on)

    async def predict_with(name: str, request: Request, top_k: int) -> dict[str, Any]:
        async def on(model: LoadedModel) -> dict[str, Any]:
            model.require_ready()
            predictor = model.predictor
            items = await _predict_items(request, predictor.bundle.manifest.task, config)
            inputs = await run_in_threadpool(predictor.encoder.encode, items)
            answer = await model.answer(inputs, items, _disconnected(request))
            ids = answer.ids or [None] * len(items)
            return {
                "model_name": name,
                "model_version": model.version,
                "predictions": [
                    {
                        "label": p.label,
                        "confidence": p.confidence,
                        "top_k": [{"label": label, "probability": q} for label, q in p.top_k],
                    }
                    | ({"id": row_id} if row_id else {})
                    for p, row_id in zip(
                        predictor.rank(answer.probabilities, top_k), ids, strict=True
                    )
                ],
            }

        return await on_current(models, name, None, on)

    @app.post(
        "/v1/predict",
        dependencies=guarded,
        openapi_extra={"requestBody": PREDICT_REQUEST_BODY},
        responses=RESPONSES,
    )
    async def predict(request: Request, top_k: int = config.top_k) -> dict[str, Any]:
        if len(models.slots) != 1:
            raise HTTPException(
                404,
                f"this server has several models: POST /v1/models/NAME/predict, NAME one of {sorted(models.slots)}",
            )
        return await predict_with(next(iter(models.slots)), request, top_k)

    @app.post(
        "/v1/models/{name}/predict",
        dependencies=guarded,
        openapi_extra={"requestBody": PREDICT_REQUEST_BODY},
        responses=RESPONSES,
    )
    async def predict_named(
        name: str, request: Request, top_k: int = config.top_k
    ) -> dict[str, Any]:
        return await predict_with(name, request, top_k)

    @app.get("/v1/models/{name}/shadow", dependencies=guarded, responses=RESPONSES)
    def shadow_comparison(name: str) -> dict[str, Any]:
        slot = models.get_slot(name)
        if slot.shadow is None:
            raise HTTPException(404, f"model {name!r} has no shadow version (serve --shadow)")
        return slot.comparison.to_dict()

    @app.post("/v2/repository/index", dependencies=guarded, responses=RESPONSES)
    def repository_index() -> list[dict[str, Any]]:
        return models.index()

    @app.post("/v2/repository/models/{name}/load", dependencies=guarded, responses=RESPONSES)
    async def repository_load(name: str) -> JSONResponse:
        await models.load(name)
        return JSONResponse({})

    @app.post("/v2/repository/models/{name}/unload", dependencies=guarded, responses=RESPONSES)
    async def repository_unload(name: str) -> JSONResponse:
        await models.unload(name)
        return JSONResponse({})

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


async def _disconnected(request: Request) -> None:
    """Completes when the client closes its connection (the body has been read by then)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


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

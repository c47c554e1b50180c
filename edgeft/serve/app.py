"""The HTTP routes: KServe v2 (Open Inference Protocol), ``/v1/predict`` and ``/metrics``.

A thin layer: requests are decoded and validated here, encoded by the bundle's own encoder and
answered through the dynamic batcher. The domain errors (``edgeft.serve.errors``) map to HTTP
statuses once, in ``HTTP_STATUS``: client mistakes are 4xx with ``{"error": ...}``, never 500;
overload is 503 with ``Retry-After``; 500 is kept for the server's own faults. A request body is
read once, before any model sees it, so a request re-run after a hot swap sees the same bytes.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response

from edgeft import __version__
from edgeft.errors import EdgeftError, shown
from edgeft.monitor.prediction_log import PredictionLog, UnknownPrediction
from edgeft.repository import ModelRepository
from edgeft.runtime import Predictor
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
MAX_ID_CHARS = 256  # a prediction id is 32 hex digits; a label is a class name


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
            raise Unauthenticated("missing or wrong bearer token")
        _same_origin(request)

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
            raise NotFound("this server keeps no prediction log (serve --log DB)")
        document = load_json(await request.body())
        if (
            not isinstance(document, dict)
            or not isinstance(document.get("id"), str)
            or not isinstance(document.get("label"), str)
        ):
            raise ProtocolError('send {"id": "<a prediction id>", "label": "<class>"}')
        given, label = document["id"], document["label"]
        if len(given) > MAX_ID_CHARS or len(label) > MAX_ID_CHARS:
            raise ProtocolError(f"{shown(given)} is not a prediction id, or the label is too long")
        try:
            await run_in_threadpool(prediction_log.feedback, given, label)
        except UnknownPrediction as exc:
            raise NotFound(f"no logged prediction has id {shown(given)}") from exc
        except (OSError, sqlite3.Error) as exc:
            metrics.record_accessory_failure("prediction_log", f"feedback not recorded: {exc}")
            raise AccessoryDown(f"the prediction log cannot take feedback now ({exc})") from exc
        return {"id": given, "label": label}

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
        if config.token:  # unauthenticated: which models, not why (reasons name files)
            reasons = dict.fromkeys(reasons, "not ready (POST /v2/repository/index says why)")
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
        upload = await Upload.read(request, config)

        async def on(model: LoadedModel) -> dict[str, Any]:
            model.require_ready()
            predictor = model.predictor
            items = upload.items(predictor.bundle.manifest.task, config)
            inputs = await run_in_threadpool(predictor.encoder.encode, items)
            answer = await model.answer(inputs, items, _disconnected(request))
            ids: list[str | None] = [*answer.ids] if answer.ids else [None] * len(items)
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
            raise NotFound(
                "this server has several models: POST /v1/models/NAME/predict, NAME one of "
                f"{sorted(models.slots)}"
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
            raise NotFound(f"model {shown(name)} has no shadow version (serve --shadow)")
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


def _disconnected(request: Request) -> Callable[[], Awaitable[None]]:
    """A waiter that completes when the client closes its connection (the body has been read
    by then), made only if the request is queued."""

    async def wait() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return wait


def _same_origin(request: Request) -> None:
    """A browser on the box must not drive the server from another site: a request whose
    Origin is not this server's own is refused (a token protects too; this also holds without
    one, since binding to localhost does not keep out a local browser)."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    if urlsplit(origin).netloc != request.headers.get("host", ""):
        raise Forbidden(f"cross-origin request from {shown(origin)} refused")


@dataclass(frozen=True)
class Upload:
    """A ``/v1`` predict request's payload, read once: the JSON body, the multipart files or
    the raw image body."""

    content_type: str
    body: bytes = b""
    files: tuple[bytes, ...] | None = None

    @classmethod
    async def read(cls, request: Request, config: ServerConfig) -> Upload:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return cls(content_type, await request.body())
        try:
            form = await request.form(max_files=config.max_batch, max_fields=config.max_batch)
        except HTTPException as exc:
            raise ProtocolError(
                f"malformed multipart upload, or more than {config.max_batch} files ({exc.detail})"
            ) from exc
        try:
            files = [f for f in form.getlist("file") if isinstance(f, UploadFile)]
            return cls(content_type, files=tuple([await f.read() for f in files]))
        finally:
            await form.close()

    def items(self, task: str, config: ServerConfig) -> list[Any]:
        """The uploaded images or the JSON texts, checked for the model's task."""
        if task == "text-classification":
            return _texts(self, config)
        if self.files is not None:
            if not self.files:
                raise ProtocolError('upload the image(s) as multipart field "file"')
            return list(self.files)
        if not self.body:
            raise ProtocolError(
                'empty request: upload an image (multipart field "file" or raw body)'
            )
        return [self.body]


def _texts(upload: Upload, config: ServerConfig) -> list[str]:
    if not upload.content_type.startswith("application/json"):
        raise ProtocolError('send JSON: {"text": "..."} or {"texts": ["...", ...]}')
    document = load_json(upload.body)
    if isinstance(document, dict) and "text" in document:
        document = {"texts": [document["text"]]}
    texts = document.get("texts") if isinstance(document, dict) else None
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ProtocolError('send {"text": "..."} or a non-empty {"texts": [...]} of strings')
    if max(len(t) for t in texts) > config.max_text_chars:
        raise ProtocolError(f"a text is over the limit of {config.max_text_chars} characters")
    return _at_most(texts, config.max_batch)


def _at_most(items: list[Any], limit: int) -> list[Any]:
    if len(items) > limit:
        raise ProtocolError(
            f"{len(items)} items is over this server's limit of {limit} per request"
        )
    return items


# The one mapping of domain errors to HTTP statuses (gRPC has its own in grpc_server).
HTTP_STATUS: dict[type[Exception], int] = {
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    ClientGone: 499,  # nginx's "client closed request"
    NotReady: 503,
    AccessoryDown: 503,
    Overloaded: 503,
    EngineFailure: 500,
    EdgeftError: 400,  # ProtocolError and every other mistake of the client's
}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EdgeftError)
    async def domain_error(_: Request, exc: EdgeftError) -> JSONResponse:
        status = lookup(HTTP_STATUS, exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if isinstance(exc, Overloaded):
            headers = {"Retry-After": str(exc.retry_after_s)}
        return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        """starlette's own: unknown routes, wrong methods, a body over its limit."""
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_parameters(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"error": problems}, status_code=400)

    @app.exception_handler(Exception)
    async def server_fault(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error", exc_info=exc)
        return JSONResponse({"error": "internal server error (see the server log)"}, 500)

"""The HTTP app: the routes of each protocol (``edgeft.serve.routes``) behind one set of guards
and one mapping of errors.

``create_app`` builds the shared state, mounts the KServe v2, ``/v1``, repository and monitoring
routes and adds the middleware. The domain errors (``edgeft.serve.errors``) map to HTTP
statuses once, here, in ``HTTP_STATUS``: client mistakes are 4xx with ``{"error": ...}``, never
500; overload is 503 with ``Retry-After``; 500 is kept for the server's own faults.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from edgeft import __version__
from edgeft.errors import EdgeftError
from edgeft.monitor.prediction_log import PredictionLog
from edgeft.repository import ModelRepository
from edgeft.runtime.task_predictor import TaskPredictor
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
from edgeft.serve.limits import BodySizeLimitMiddleware
from edgeft.serve.live_monitor import LiveMonitor
from edgeft.serve.models import PredictorFactory, ServedModels, production_versions
from edgeft.serve.prometheus import RequestMetricsMiddleware, ServerMetrics
from edgeft.serve.routes import ServeState, monitoring, repository, v1, v2

log = logging.getLogger("edgeft.serve")


def create_app(
    source: TaskPredictor | ModelRepository,
    config: ServerConfig,
    factory: PredictorFactory | None = None,
) -> FastAPI:
    """A ready-to-run ASGI app serving one predictor (as ``config.model_name``, version 1) or
    every model of a repository, each at its ``production`` version, following alias moves
    (``factory`` opens a version's bundle folder the way the command line asked)."""
    state = _state(source, config, factory)
    app = FastAPI(
        title="edgeft",
        version=__version__,
        lifespan=_lifespan(state),
        openapi_url=None,  # served below, behind the token; no /docs (its page loads from a CDN)
        docs_url=None,
        redoc_url=None,
    )
    _install_error_handlers(app)
    state.metrics.ready_probe(lambda: state.models.ready, state.models.queued_items)
    for routes in (v2, v1, repository, monitoring):
        routes.register(app, state)

    @app.get("/openapi.json", dependencies=state.guarded, include_in_schema=False)
    def openapi() -> dict[str, Any]:
        return app.openapi()

    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=config.max_request_bytes,
        timeout_s=config.body_timeout_s,
    )
    app.add_middleware(RequestMetricsMiddleware, metrics=state.metrics)  # outermost: sees 413s too
    return app


def _state(
    source: TaskPredictor | ModelRepository,
    config: ServerConfig,
    factory: PredictorFactory | None,
) -> ServeState:
    """The served models, metrics, prediction log and live monitor the routes share."""
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
    return ServeState(config, models, metrics, prediction_log, monitor)


def _lifespan(state: ServeState) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Starts the models, the monitor and the optional gRPC server with the app; stops them in
    reverse, closing the prediction log last."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await state.models.start()
        if state.monitor is not None:
            state.monitor.start()
        grpc_server = None
        if state.config.grpc_address:
            from edgeft.serve.grpc_server import start_grpc

            grpc_server = await start_grpc(state.models, state.config, state.config.grpc_address)
        yield
        if grpc_server is not None:
            await grpc_server.stop(grace=5)
        await state.models.stop()
        if state.monitor is not None:
            await state.monitor.stop()
        if state.prediction_log is not None:
            await run_in_threadpool(state.prediction_log.close)

    return lifespan


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

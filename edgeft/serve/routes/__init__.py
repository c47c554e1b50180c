"""The HTTP routes, one module per protocol, each with a ``register(app, state)``.

Split by protocol so each surface (KServe v2, ``/v1``, the model repository, monitoring) reads
on its own; what they share is one explicit ``ServeState`` instead of variables captured from a
long ``create_app``. The routes are added to the app itself (not through ``include_router``),
so matching, 405s and the OpenAPI schema are exactly those of routes declared on the app. They
raise the domain errors (``edgeft.serve.errors``); ``edgeft.serve.app`` maps them to HTTP
statuses once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, Request

from edgeft.errors import shown
from edgeft.monitor.prediction_log import PredictionLog
from edgeft.serve.config import ServerConfig
from edgeft.serve.errors import Forbidden, Unauthenticated
from edgeft.serve.limits import token_matches
from edgeft.serve.live_monitor import LiveMonitor
from edgeft.serve.models import ServedModels
from edgeft.serve.prometheus import ServerMetrics


@dataclass(frozen=True)
class ServeState:
    """What every route works on, made once per app by ``create_app``: passed in, not captured,
    so a route module names what it uses. ``prediction_log`` and ``monitor`` are ``None`` when
    the server keeps no log (no ``serve --log``)."""

    config: ServerConfig
    models: ServedModels
    metrics: ServerMetrics
    prediction_log: PredictionLog | None
    monitor: LiveMonitor | None

    @cached_property
    def guarded(self) -> list[Any]:
        """The dependency of every route but the health probes (which an orchestrator calls
        without a token); made once, so every route shares the same check."""
        return [Depends(self.authorised)]

    def authorised(self, request: Request) -> None:
        """The token first (401), then the origin (403)."""
        token = self.config.token
        if token and not token_matches(request.headers.get("authorization"), token):
            raise Unauthenticated("missing or wrong bearer token")
        _same_origin(request)


def disconnected(request: Request) -> Callable[[], Awaitable[None]]:
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

"""What can go wrong with a request, named once for every transport.

The server's code raises these domain errors; each transport maps them to its own status once
(REST in ``edgeft.serve.app``, gRPC in ``edgeft.serve.grpc_server``), so the same request gets
the same class of answer over both. A client's bad input is ``ProtocolError``
(``edgeft.serve.protocol``); any other ``EdgeftError`` reaching a transport is the client's
mistake too. Anything else is the server's own fault and is answered without its details.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from edgeft.errors import EdgeftError

T = TypeVar("T")


class Unauthenticated(EdgeftError):
    """No bearer token, or the wrong one (401, UNAUTHENTICATED): always the first check."""


class Forbidden(EdgeftError):
    """A request from another site's page (its Origin is not this server): 403,
    PERMISSION_DENIED."""


class NotFound(EdgeftError):
    """No such model, version or resource on this server (404, NOT_FOUND)."""


class NotReady(EdgeftError):
    """The model exists but cannot answer now: loading, restarting, failed validation (503,
    UNAVAILABLE)."""


class AccessoryDown(EdgeftError):
    """An accessory the request needs (the prediction log for feedback) cannot serve it now:
    the disk is full or read-only (503, UNAVAILABLE). Inference goes on without it."""


class Overloaded(EdgeftError):
    """The queue is full, or a request waited in it past its deadline: retry later (503 with
    Retry-After, UNAVAILABLE)."""

    retry_after_s = 1


class EngineFailure(EdgeftError):
    """The engine failed on a request that passed every input check: a server fault (500,
    INTERNAL)."""


class ClientGone(EdgeftError):
    """The client disconnected before its request ran; nothing is computed for it (499,
    CANCELLED)."""


class BatcherStopped(EdgeftError):
    """This batcher's model was replaced or unloaded; the caller asks the current one (never
    reaches a client: ``on_current`` retries)."""


def lookup(table: Mapping[type[Exception], T], exc: Exception) -> T:
    """The entry of the nearest class of ``exc`` in ``table`` (a transport's mapping, which
    maps ``EdgeftError`` itself, so every domain error finds one)."""
    for kind in type(exc).__mro__:
        if kind in table:
            return table[kind]
    raise KeyError(f"{type(exc).__name__} is not mapped")

"""What an operator can tune on the server, with defaults safe for a factory network."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerConfig:
    """Dynamic batching, request limits and access.

    ``validate`` runs ``edgeft validate`` on the served model before the server reports ready;
    a model that fails it keeps the server live but never ready.

    ``max_wait_ms`` is how long the first request of a batch waits for company (Triton's
    ``max_queue_delay``, also 0 by default): under load, requests that queue while the engine
    runs are batched anyway, and a lone request is not delayed.
    """

    model_name: str
    max_batch: int = 8
    max_wait_ms: float = 0.0
    max_request_bytes: int = 16 * 1024 * 1024
    token: str | None = None
    top_k: int = 5
    validate: bool = False

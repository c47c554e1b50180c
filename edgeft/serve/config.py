"""What an operator can tune on the server, with defaults safe for a factory network."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeft.errors import EdgeftError
from edgeft.monitor.prediction_log import LogLimits
from edgeft.serve.traffic import SideVersion


@dataclass(frozen=True)
class ServerConfig:
    """Dynamic batching, request limits and access.

    ``validate`` runs ``edgeft validate`` on the served model before the server reports ready;
    a model that fails it keeps the server live but never ready.

    ``max_wait_ms`` is how long the first request of a batch waits for company (Triton's
    ``max_queue_delay``, also 0 by default): under load, requests that queue while the engine
    runs are batched anyway, and a lone request is not delayed.

    Every size is bounded: ``max_batch`` items per request and per engine call, ``max_queue``
    items waiting (one more gets a 503 at once), ``queue_timeout_s`` of waiting, ``max_connections``
    open at once (uvicorn answers 503 past it), ``max_request_bytes`` per body arriving within
    ``body_timeout_s`` (else 408), and
    ``max_text_chars`` per text.

    ``log`` (a SQLite file) keeps the prediction log within ``log_limits``; the server then
    analyses each serving version's newest ``monitor_window`` predictions every
    ``monitor_interval_s`` (Prometheus gauges, the status page). ``calibrated`` answers with
    temperature-scaled probabilities (the bundle's reference profile).
    """

    model_name: str
    max_batch: int = 8
    max_wait_ms: float = 0.0
    max_request_bytes: int = 16 * 1024 * 1024
    body_timeout_s: float = 30.0
    max_queue: int = 64
    queue_timeout_s: float = 10.0
    max_connections: int = 64
    max_text_chars: int = 20_000
    token: str | None = None
    grpc_address: str | None = None  # host:port for the v2 gRPC protocol beside REST
    side_versions: tuple[tuple[str, SideVersion], ...] = ()  # ("canary" | "shadow", version)
    top_k: int = 5
    validate: bool = False
    calibrated: bool = False
    log: str | None = None
    log_limits: LogLimits = field(default_factory=LogLimits)
    monitor_window: int = 500
    monitor_interval_s: float = 60.0

    def __post_init__(self) -> None:
        seen = set()
        for role, side in self.side_versions:
            if (role, side.model) in seen:
                raise EdgeftError(f"two --{role} versions for model {side.model!r}: give one")
            seen.add((role, side.model))

"""``edgeft serve`` as a call: the options a user types, turned into a running server.

The rules between the command line and :func:`edgeft.serve.serve` live here, not in the CLI:
the bearer token comes from an environment variable (never from argv, which ``ps`` shows), sizes
given in MB become bytes, ``--canary``/``--shadow`` need a repository, and every predictor the
server opens (one bundle, or each version a repository promotes) is opened the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgeft.errors import EdgeftError
from edgeft.monitor.prediction_log import LogLimits
from edgeft.repository import ModelRepository, is_repository
from edgeft.runtime.model_choice import ModelChoice
from edgeft.runtime.task_predictor import TaskPredictor, open_predictor
from edgeft.serve.config import ServerConfig
from edgeft.serve.server import default_model_name, serve
from edgeft.serve.traffic import parse_side_version
from edgeft.targets import resolve_target

MB = 1024 * 1024


@dataclass(frozen=True)
class ServeOptions:
    """What to serve (a bundle or a repository folder), where, and within which limits; the
    limits' defaults are the server's and the log's own (``ServerConfig``, ``LogLimits``)."""

    source: Path
    host: str = "127.0.0.1"
    port: int = 8000
    grpc_port: int | None = None
    canary: Sequence[str] = ()  # NAME@VERSION:PERCENT
    shadow: Sequence[str] = ()  # NAME@VERSION
    engine: str = "auto"
    precision: str = "auto"
    allow_mismatch: bool = False
    validate: bool = False
    model_name: str | None = None
    max_batch: int = ServerConfig.max_batch
    max_wait_ms: float = ServerConfig.max_wait_ms
    max_request_mb: float = ServerConfig.max_request_bytes / MB
    max_queue: int = ServerConfig.max_queue
    queue_timeout_s: float = ServerConfig.queue_timeout_s
    max_connections: int = ServerConfig.max_connections
    body_timeout_s: float = ServerConfig.body_timeout_s
    threads: int | None = None
    target: str | None = None
    token_env: str | None = None
    calibrated: bool = False
    log: Path | None = None
    log_max_rows: int = LogLimits.max_rows
    log_max_mb: float = LogLimits.max_bytes / MB
    keep_below: float = LogLimits.keep_below
    keep_share: float = LogLimits.keep_share
    keep_max_mb: float = LogLimits.max_input_bytes / MB
    monitor_window: int = ServerConfig.monitor_window
    monitor_interval_s: float = ServerConfig.monitor_interval_s


def token_from_env(name: str | None) -> str | None:
    """The bearer token held by environment variable ``name`` (None: no token); an empty or
    unset variable is an error, so a typo never serves without the token the user meant."""
    if not name:
        return None
    token = os.environ.get(name)
    if not token:
        raise EdgeftError(f"--token-env {name}: that environment variable is empty")
    return token


def server_config(options: ServeOptions) -> ServerConfig:
    """The server's limits and access from the options (MB to bytes, the token read)."""
    return ServerConfig(
        model_name=options.model_name or default_model_name(options.source),
        max_batch=options.max_batch,
        max_wait_ms=options.max_wait_ms,
        max_request_bytes=int(options.max_request_mb * MB),
        max_queue=options.max_queue,
        queue_timeout_s=options.queue_timeout_s,
        max_connections=options.max_connections,
        body_timeout_s=options.body_timeout_s,
        token=token_from_env(options.token_env),
        validate=options.validate,
        grpc_address=f"{options.host}:{options.grpc_port}" if options.grpc_port else None,
        side_versions=tuple(
            [("canary", parse_side_version(c, canary=True)) for c in options.canary]
            + [("shadow", parse_side_version(s, canary=False)) for s in options.shadow]
        ),
        calibrated=options.calibrated,
        log=str(options.log) if options.log else None,
        log_limits=LogLimits(
            max_rows=options.log_max_rows,
            max_bytes=int(options.log_max_mb * MB),
            max_input_bytes=int(options.keep_max_mb * MB),
            keep_below=options.keep_below,
            keep_share=options.keep_share,
        ),
        monitor_window=options.monitor_window,
        monitor_interval_s=options.monitor_interval_s,
    )


def launch(
    options: ServeOptions,
    announce: Callable[[str], None] = print,
    on_choice: Callable[[ModelChoice], None] = lambda choice: None,
) -> None:
    """Serve until SIGINT/SIGTERM. ``announce`` gets one line saying what is served where;
    ``on_choice`` hears which model each opened predictor runs (and what it passed over)."""
    config = server_config(options)
    profile = resolve_target(options.target) if options.target else None

    def open_chosen(path: Path) -> TaskPredictor:
        predictor = open_predictor(
            path,
            options.engine,
            options.precision,
            threads=options.threads,
            target=profile,
            allow_mismatch=options.allow_mismatch,
            calibrated=options.calibrated,
        )
        on_choice(predictor.choice)
        return predictor

    address = f"http://{options.host}:{options.port}"
    if is_repository(options.source):
        repository = ModelRepository(options.source)
        names = ", ".join(repository.models()) or "none yet"
        announce(
            f"serving repository {options.source} ({names}) on {address}  "
            "v2: /v2/models/NAME/infer, following its production aliases"
        )
        serve(repository, config, options.host, options.port, factory=open_chosen)
        return
    if config.side_versions:
        raise EdgeftError("--canary and --shadow name versions: serve a repository")
    predictor = open_chosen(options.source)
    announce(
        f"serving {config.model_name} ({predictor.model.label}) on {address}  "
        f"v2: /v2/models/{config.model_name}/infer  upload: /v1/predict"
    )
    serve(predictor, config, options.host, options.port)

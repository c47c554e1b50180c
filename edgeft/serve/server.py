"""``serve``: a bundle behind uvicorn, on localhost unless told otherwise."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

from edgeft.errors import EdgeftError
from edgeft.repository import ModelRepository
from edgeft.runtime.task_predictor import TaskPredictor
from edgeft.serve.config import ServerConfig
from edgeft.serve.models import PredictorFactory

log = logging.getLogger("edgeft.serve")

GRACEFUL_SHUTDOWN_S = 10


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(
    source: TaskPredictor | ModelRepository,
    config: ServerConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    factory: PredictorFactory | None = None,
) -> None:
    """Run until SIGINT/SIGTERM; in-flight requests finish before the engine stops. ``source``
    is one predictor or a repository (whose versions ``factory`` opens)."""
    import uvicorn

    from edgeft.serve.app import create_app

    if not is_loopback(host) and not config.token:
        log.warning("serving on %s without a token: anyone on that network can call it", host)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(source, config, factory),
            host=host,
            port=port,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            limit_concurrency=config.max_connections,
            log_level="info",
            access_log=False,
        )
    )
    server.run()


def default_model_name(bundle: str | Path) -> str:
    """The bundle folder's name, in the characters a v2 URL path can carry unescaped."""
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in Path(bundle).resolve().name)
    if not name.strip("-."):
        raise EdgeftError(f"cannot derive a model name from {bundle}; pass --model-name")
    return name

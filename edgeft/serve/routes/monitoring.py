"""What probes and people watch: the health probes, the status page and ``/metrics``.

The health probes stay open without a token (an orchestrator has none); the status page and
the Prometheus exposition are guarded like every other route.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.responses import HTMLResponse, JSONResponse, Response

from edgeft.serve.routes import ServeState
from edgeft.serve.status_page import render_status_page


def register(app: FastAPI, state: ServeState) -> None:
    """Adds the monitoring routes over ``state`` to ``app``."""
    models, metrics, guarded = state.models, state.metrics, state.guarded

    @app.get("/", dependencies=guarded, include_in_schema=False)
    def status_page() -> HTMLResponse:
        return HTMLResponse(
            render_status_page(models, metrics, state.monitor, state.prediction_log)
        )

    @app.get("/v2/health/live")
    def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    def ready() -> JSONResponse:
        reasons = models.not_ready_reasons()
        if not reasons:
            return JSONResponse({"ready": True})
        if state.config.token:  # unauthenticated: which models, not why (reasons name files)
            reasons = dict.fromkeys(reasons, "not ready (POST /v2/repository/index says why)")
        reason = "; ".join(f"{name}: {why}" for name, why in reasons.items())
        return JSONResponse({"ready": False, "reason": reason}, status_code=503)

    @app.get("/metrics", dependencies=guarded)
    def prometheus() -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4")

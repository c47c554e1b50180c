"""The KServe v2 model repository extension: list the models, load and unload one.

Apart from ``v2`` because it acts on the served set (``ServedModels``) rather than on one
model's requests.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.responses import JSONResponse

from edgeft.serve.openapi import RESPONSES
from edgeft.serve.routes import ServeState


def register(app: FastAPI, state: ServeState) -> None:
    """Adds the repository routes over ``state`` to ``app``."""
    models, guarded = state.models, state.guarded

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

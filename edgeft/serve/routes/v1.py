"""The ``/v1`` routes: predictions on uploaded images or JSON texts, feedback on a logged
prediction, and a model's shadow comparison.

Simpler than v2 for a person with ``curl``: the bundle's own encoder turns the upload into
tensors, and the answer is ranked labels rather than raw probabilities (an anomaly model's:
score and verdict, and with ``overlay=true`` the defect map drawn over each image, a base64
PNG).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, cast

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from edgeft.errors import shown
from edgeft.monitor.prediction_log import UnknownPrediction
from edgeft.runtime.anomaly.detector import AnomalyDetector, AnomalyOutputs
from edgeft.serve.config import ServerConfig
from edgeft.serve.errors import AccessoryDown, NotFound
from edgeft.serve.models import LoadedModel, on_current
from edgeft.serve.openapi import FEEDBACK_REQUEST_BODY, PREDICT_REQUEST_BODY, RESPONSES
from edgeft.serve.protocol import ProtocolError, load_json
from edgeft.serve.routes import ServeState, disconnected

MAX_ID_CHARS = 256  # a prediction id is 32 hex digits; a label is a class name


def register(app: FastAPI, state: ServeState) -> None:
    """Adds the ``/v1`` routes over ``state`` to ``app``."""
    config, models, metrics, guarded = state.config, state.models, state.metrics, state.guarded

    @app.post(
        "/v1/feedback",
        dependencies=guarded,
        openapi_extra={"requestBody": FEEDBACK_REQUEST_BODY},
        responses=RESPONSES,
    )
    async def feedback(request: Request) -> dict[str, str]:
        prediction_log = state.prediction_log
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

    async def predict_with(
        name: str, request: Request, top_k: int, overlay: bool
    ) -> dict[str, Any]:
        upload = await Upload.read(request, config)

        async def on(model: LoadedModel) -> dict[str, Any]:
            model.require_ready()
            predictor = model.predictor
            if overlay and not isinstance(predictor, AnomalyDetector):
                raise ProtocolError("overlay=true draws defect maps: an anomaly model's")
            items = upload.items(predictor.bundle.manifest.task, config)
            inputs = await run_in_threadpool(predictor.encoder.encode, items)
            answer = await model.answer(inputs, items, disconnected(request))
            ids: list[str | None] = [*answer.ids] if answer.ids else [None] * len(items)
            rows = [
                row | ({"id": row_id} if row_id else {})
                for row, row_id in zip(predictor.rows(answer.outputs, top_k), ids, strict=True)
            ]
            if overlay:
                assert isinstance(predictor, AnomalyDetector)
                pictures = await run_in_threadpool(
                    predictor.overlays_base64, items, cast(AnomalyOutputs, answer.outputs)
                )
                rows = [r | {"overlay_png": p} for r, p in zip(rows, pictures, strict=True)]
            return {"model_name": name, "model_version": model.version, "predictions": rows}

        return await on_current(models, name, None, on)

    @app.post(
        "/v1/predict",
        dependencies=guarded,
        openapi_extra={"requestBody": PREDICT_REQUEST_BODY},
        responses=RESPONSES,
    )
    async def predict(
        request: Request, top_k: int = config.top_k, overlay: bool = False
    ) -> dict[str, Any]:
        if len(models.slots) != 1:
            raise NotFound(
                "this server has several models: POST /v1/models/NAME/predict, NAME one of "
                f"{sorted(models.slots)}"
            )
        return await predict_with(next(iter(models.slots)), request, top_k, overlay)

    @app.post(
        "/v1/models/{name}/predict",
        dependencies=guarded,
        openapi_extra={"requestBody": PREDICT_REQUEST_BODY},
        responses=RESPONSES,
    )
    async def predict_named(
        name: str, request: Request, top_k: int = config.top_k, overlay: bool = False
    ) -> dict[str, Any]:
        return await predict_with(name, request, top_k, overlay)

    @app.get("/v1/models/{name}/shadow", dependencies=guarded, responses=RESPONSES)
    def shadow_comparison(name: str) -> dict[str, Any]:
        slot = models.get_slot(name)
        if slot.shadow is None:
            raise NotFound(f"model {shown(name)} has no shadow version (serve --shadow)")
        return slot.comparison.to_dict()


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

"""The models a server holds: each a name, the version answering for it, and the versions
being loaded beside it (a hot swap).

A version is loaded and warmed up (and, with ``validate``, held to its budget on this host)
before it takes traffic; the switch is one assignment, so a request goes wholly to the old or
to the new version; the old version's queue then drains and its worker stops. A version that
fails to load leaves the serving one in place, and the failure is reported (``index``, the log).
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
from starlette.concurrency import run_in_threadpool

from edgeft.errors import EdgeftError, shown
from edgeft.monitor.prediction_log import ModelIdentity, PredictionLog
from edgeft.repository import ModelRepository
from edgeft.runtime.task_predictor import TaskOutputs, TaskPredictor
from edgeft.serve.batching import BatcherHooks, DynamicBatcher
from edgeft.serve.config import ServerConfig
from edgeft.serve.errors import BatcherStopped, NotFound, NotReady, Overloaded
from edgeft.serve.prometheus import ServerMetrics
from edgeft.serve.protocol import (
    BYTES,
    InferRequest,
    ModelSignature,
    ProtocolError,
    parse_infer_request,
    tensor_metadata,
)
from edgeft.serve.traffic import ShadowComparison, SideVersion

log = logging.getLogger("edgeft.serve")

PREDICTION_IDS = "prediction_ids"  # response parameter: each item's id in the prediction log
TEXT_INPUT = "text"
PLATFORMS = {"onnxruntime": "onnxruntime_onnx", "openvino": "openvino"}
POLL_S = 1.0

PredictorFactory = Callable[[Path], TaskPredictor]
T = TypeVar("T")


@dataclass(frozen=True)
class Answer:
    """The model's outputs for a request's items (its task's: class probabilities, or scores
    and defect maps), and their ids in the prediction log (None when the server keeps no log)."""

    outputs: TaskOutputs
    ids: list[str] | None = None

    @property
    def probabilities(self) -> np.ndarray:
        """(N, labels): what the shadow comparison and the log compare, whatever the task."""
        return self.outputs.probabilities


@dataclass
class LoadedModel:
    """One version of one model, answering through its own batcher (and logging what it
    answered, when the server keeps a prediction log)."""

    name: str
    version: str
    predictor: TaskPredictor
    batcher: DynamicBatcher
    signature: ModelSignature
    log: PredictionLog | None = None

    @property
    def ready(self) -> bool:
        return self.batcher.healthy

    @property
    def not_ready_reason(self) -> str:
        return (
            "the model is warming up" if self.batcher.restarts == 0 else "the engine is restarting"
        )

    def metadata(self) -> dict[str, Any]:
        """The v2 model metadata, with what a client needs to prepare inputs in parameters."""
        predictor, manifest = self.predictor, self.predictor.bundle.manifest
        scheme = predictor.model.int8_scheme
        text = self.signature.text_input
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": PLATFORMS[predictor.model.engine],
            "inputs": [tensor_metadata(spec) for spec in manifest.inputs],
            "outputs": [tensor_metadata(spec) for spec in predictor.output_specs()],
            "parameters": {
                "precision": predictor.model.precision,
                "int8_scheme": scheme.key if scheme else None,
                "targets": predictor.model.targets,
                "task": manifest.task,
                "labels": predictor.labels,
                "max_batch_size": self.signature.max_batch,
                **({"bytes_input": {"name": text, "datatype": BYTES}} if text else {}),
            },
        }

    async def infer(
        self,
        body: bytes,
        header_length: str | None,
        client_gone: Callable[[], Awaitable[None]] | None = None,
        logged: bool = True,
    ) -> tuple[InferRequest, Answer]:
        """A v2 request's bytes (JSON header, binary tensors after it) -> its parsed form and
        its answer; every check is made before the request joins a batch."""
        self.require_ready()
        parsed = await run_in_threadpool(parse_infer_request, body, header_length, self.signature)
        encoder = self.predictor.encoder
        if parsed.texts is not None:
            inputs = await run_in_threadpool(encoder.encode, parsed.texts)
        else:
            encoder.check(parsed.inputs)
            inputs = parsed.inputs
        return parsed, await self.answer(inputs, parsed.texts, client_gone, logged)

    def require_ready(self) -> None:
        if not self.ready:
            raise NotReady(f"model not ready: {self.not_ready_reason}")

    async def answer(
        self,
        inputs: dict[str, np.ndarray],
        items: list[Any] | None = None,
        client_gone: Callable[[], Awaitable[None]] | None = None,
        logged: bool = True,
    ) -> Answer:
        """Encoded inputs through this version's batcher, refused when it is not ready; logged
        with their statistics (``items``: the images or texts they were encoded from, if any)."""
        self.require_ready()
        outputs = cast(TaskOutputs, await self.batcher.submit(inputs, client_gone))
        finite(outputs.probabilities)
        if self.log is None or not logged:
            return Answer(outputs)
        statistics = await run_in_threadpool(self.predictor.encoder.statistics, inputs, items)
        ids = self.log.record(self.name, self.version, outputs, statistics, items)
        return Answer(outputs, ids)

    def response_tensors(self, parsed: InferRequest, answer: Answer) -> dict[str, np.ndarray]:
        """The answer's output tensors, those the client asked for (all when it named none)."""
        tensors = self.predictor.output_tensors(answer.outputs)
        return {k: v for k, v in tensors.items() if parsed.outputs is None or k in parsed.outputs}


@dataclass
class ModelSlot:
    """What a model name stands for: the version serving it, and why none is, if none is."""

    name: str
    serving: LoadedModel | None = None
    reason: str = "loading"
    failed: dict[str, str] = field(default_factory=dict)  # version -> why it did not load
    unloaded: bool = False  # by the repository extension: not served, not followed, not counted
    canary: LoadedModel | None = None
    canary_share: float = 0.0
    shadow: LoadedModel | None = None
    comparison: ShadowComparison = field(default_factory=ShadowComparison)
    _shadow_tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def side_models(self) -> list[LoadedModel]:
        return [m for m in (self.canary, self.shadow) if m is not None]

    @property
    def not_ready_reason(self) -> str | None:
        """Why the serving version cannot answer now; None when it can."""
        if self.serving is None:
            return self.reason
        return None if self.serving.ready else self.serving.not_ready_reason

    def serving_version(self, version: str | None) -> LoadedModel | None:
        """The serving version, checked against the one a client named (404 if it differs)."""
        if self.unloaded:
            raise NotFound(f"model {self.name!r} is {self.reason}")
        if self.serving is not None and version not in (None, self.serving.version):
            raise NotFound(
                f"model {self.name!r} version {shown(version)} is not loaded (serving: "
                f"{self.serving.version!r})"
            )
        return self.serving


class ServedModels:
    """The server's models, loaded from one bundle or following a repository's aliases."""

    def __init__(
        self,
        config: ServerConfig,
        metrics: ServerMetrics,
        sources: Callable[[], dict[str, tuple[str, Path]]],
        factory: PredictorFactory,
        follow: bool,
        locate: Callable[[str, str], Path] | None = None,
        side_versions: Sequence[tuple[str, SideVersion]] = (),
        log: PredictionLog | None = None,
    ) -> None:
        """``sources()`` says which version each model should serve now (name -> version, bundle
        folder); with ``follow`` it is polled and the server swaps when it changes.
        ``side_versions`` are (``"canary"`` or ``"shadow"``, version) to load beside production,
        found with ``locate(model, version)``."""
        self._locate = locate
        self.log = log
        self._side_versions = list(side_versions)
        self.config = config
        self.metrics = metrics
        self._sources = sources
        self._factory = factory
        self._follow = follow
        self.slots: dict[str, ModelSlot] = {}
        self._retired: set[asyncio.Task[None]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self.sync()
        if self._follow:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        for slot in self.slots.values():
            for model in slot.side_models():
                await model.batcher.stop()
            if slot.serving is not None:
                await slot.serving.batcher.stop()
                slot.serving = None
                slot.reason = "shutting down"
        await asyncio.gather(*self._retired, return_exceptions=True)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            try:
                await self.sync()
            except Exception:
                log.exception("could not read the repository; serving what is loaded")

    async def sync(self, only: str | None = None) -> None:
        """Load what ``sources`` asks for where it differs from what is serving."""
        async with self._lock:
            wanted = await run_in_threadpool(self._sources)
            for name, (version, path) in wanted.items():
                if only not in (None, name):
                    continue
                slot = self.slots.setdefault(name, ModelSlot(name))
                serving = slot.serving.version if slot.serving else None
                if version != serving and version not in slot.failed and not slot.unloaded:
                    await self._swap(slot, version, path)
                await self._load_side_versions(slot)

    async def _load_side_versions(self, slot: ModelSlot) -> None:
        """The canary and shadow asked for this model, loaded once (a failure is reported)."""
        for role, side in self._side_versions:
            current = getattr(slot, role)
            if side.model != slot.name or side.version in slot.failed or current is not None:
                continue
            try:
                if self._locate is None:
                    raise EdgeftError("canary and shadow versions need a repository")
                path = await run_in_threadpool(self._locate, side.model, side.version)
                model = await self._open(slot.name, side.version, path)
            except Exception as exc:  # reported in the index; production keeps serving
                log.error("%s: %s version %s did not load: %s", slot.name, role, side.version, exc)
                slot.failed[side.version] = str(exc)
                continue
            setattr(slot, role, model)
            if role == "canary":
                slot.canary_share = side.share
            log.info("%s: version %s loaded as %s", slot.name, side.version, role)

    async def load(self, name: str) -> None:
        """The repository extension's load: (re)load what the model's alias names now."""
        if name not in await run_in_threadpool(self._sources):
            raise NotFound(f"unknown model {shown(name)}")
        slot = self.slots.setdefault(name, ModelSlot(name))
        slot.failed.clear()
        slot.unloaded = False
        await self.sync(only=name)
        if slot.serving is None:
            raise EdgeftError(f"model {name!r} did not load: {slot.reason}")

    async def unload(self, name: str) -> None:
        slot = self.get_slot(name)
        if slot.serving is not None:
            self._retire(slot.serving)
            slot.serving = None
        slot.unloaded = True
        slot.reason = f"unloaded (POST /v2/repository/models/{name}/load loads it again)"

    def get_slot(self, name: str) -> ModelSlot:
        slot = self.slots.get(name)
        if slot is None:
            raise NotFound(f"unknown model {shown(name)}; this server has {sorted(self.slots)}")
        return slot

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        """The model answering for ``name`` (and ``version``, when the client names one)."""
        slot = self.get_slot(name)
        serving = slot.serving_version(None)
        if serving is None:
            raise NotReady(f"model {name!r} not ready: {slot.reason}")
        for side in slot.side_models():
            if version == side.version:
                return side
        if version is None and slot.canary is not None and random.random() < slot.canary_share:
            return slot.canary
        slot.serving_version(version)  # a version neither serving nor on the side: 404
        return serving

    @property
    def ready(self) -> bool:
        """Every model that should serve is serving and warm (Triton's server readiness)."""
        return not self.not_ready_reasons()

    def not_ready_reasons(self) -> dict[str, str]:
        """Each model that should serve and cannot, and why."""
        return {
            name: why
            for name, slot in self.slots.items()
            if not slot.unloaded and (why := slot.not_ready_reason) is not None
        }

    def queued_items(self) -> int:
        models = [m for s in self.slots.values() for m in [s.serving, *s.side_models()] if m]
        return sum(m.batcher.queued_items for m in models)

    def shadow_copy(
        self, model: LoadedModel, body: bytes, header_length: str | None, answer: np.ndarray
    ) -> None:
        """Run the model's shadow (if it has one) on a copy of a request production answered;
        the comparison is recorded, the client never waits for it."""
        slot = self.slots.get(model.name)
        if slot is None or slot.shadow is None or slot.serving is not model:
            return
        shadow, comparison = slot.shadow, slot.comparison
        comparison.production, comparison.shadow = model.version, shadow.version
        if len(slot._shadow_tasks) >= self.config.max_queue:
            comparison.skipped += 1
            return

        async def compare() -> None:
            started = time.perf_counter()
            try:
                _, theirs = await shadow.infer(body, header_length, logged=False)
            except Overloaded:
                comparison.skipped += 1
                return
            except Exception as exc:
                comparison.failed += 1
                log.warning("%s: shadow version %s failed: %s", model.name, shadow.version, exc)
                return
            seconds = time.perf_counter() - started
            comparison.record(answer, theirs.probabilities, model.predictor.labels, seconds)
            self.metrics.record_shadow(model.name, answer, theirs.probabilities, seconds)

        task = asyncio.get_running_loop().create_task(compare())
        slot._shadow_tasks.add(task)
        task.add_done_callback(slot._shadow_tasks.discard)

    def index(self) -> list[dict[str, Any]]:
        """The v2 repository index: every model, the version loaded and those that failed."""
        out = []
        for name, slot in sorted(self.slots.items()):
            if slot.unloaded:
                out.append({"name": name, "state": "UNAVAILABLE", "reason": "unloaded"})
            elif slot.serving is not None:
                state = "READY" if slot.serving.ready else "LOADING"
                out.append({"name": name, "version": slot.serving.version, "state": state})
            else:
                out.append({"name": name, "state": "UNAVAILABLE", "reason": slot.reason})
            out += [
                {"name": name, "version": v, "state": "UNAVAILABLE", "reason": why}
                for v, why in sorted(slot.failed.items())
            ]
        return out

    async def _swap(self, slot: ModelSlot, version: str, path: Path) -> None:
        try:
            model = await self._open(slot.name, version, path)
        except Exception as exc:  # any failure to load leaves the serving version in place
            if not isinstance(exc, EdgeftError):
                log.exception("%s: version %s did not load", slot.name, version)
            reason = f"version {version} did not load: {exc}"
            log.error(
                "%s: %s%s",
                slot.name,
                reason,
                "; the loaded version keeps serving" if slot.serving else "",
            )
            slot.failed[version] = str(exc)
            if slot.serving is None:
                slot.reason = reason
            return
        old, slot.serving = slot.serving, model
        log.info(
            "%s: version %s serving%s", slot.name, version, f" (was {old.version})" if old else ""
        )
        if old is not None:
            self._retire(old)

    def _retire(self, old: LoadedModel) -> None:
        """Let the old version finish what it has queued, then stop it."""
        task = asyncio.get_running_loop().create_task(old.batcher.stop())
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    async def _open(self, name: str, version: str, path: Path) -> LoadedModel:
        predictor = await run_in_threadpool(self._factory, path)
        if self.config.validate:
            failure = await run_in_threadpool(validation_failure, predictor)
            if failure:
                raise EdgeftError(f"validation failed on this host: {failure}")
        config = self.config
        warm_up = lambda: predictor.warm_up((1, config.max_batch))  # noqa: E731
        try:
            await run_in_threadpool(warm_up)  # before it takes traffic
        except Exception as exc:
            raise EdgeftError(f"warm-up inference failed ({exc})") from exc
        manifest = predictor.bundle.manifest
        if self.log is not None:
            identity = ModelIdentity(
                name,
                version,
                list(predictor.labels),
                predictor.bundle.fingerprint,
                predictor.temperature,
            )
            await run_in_threadpool(self._register, identity)
        batcher = DynamicBatcher(
            predictor.outputs,
            config.max_batch,
            config.max_wait_ms / 1000,
            max_queue=config.max_queue,
            queue_timeout_s=config.queue_timeout_s,
            hooks=BatcherHooks(
                on_batch=self.metrics.record_batch,
                on_failure=self.metrics.record_failure,
                warm_up=warm_up,
            ),
        )
        batcher.start(warm=True)
        signature = ModelSignature(
            inputs=manifest.inputs,
            outputs=tuple(spec.name for spec in predictor.output_specs()),
            max_batch=config.max_batch,
            text_input=TEXT_INPUT if manifest.task == "text-classification" else None,
            max_text_chars=config.max_text_chars,
        )
        return LoadedModel(name, version, predictor, batcher, signature, self.log)

    def _register(self, identity: ModelIdentity) -> None:
        """Tell the prediction log which bundle a version is. The log is an accessory: when
        it cannot write (a full or read-only disk), the version serves all the same and the
        failure is counted and shown (metrics, status page)."""
        assert self.log is not None
        try:
            self.log.register(identity)
        except (OSError, sqlite3.Error, EdgeftError) as exc:
            self.metrics.record_accessory_failure(
                "prediction_log",
                f"{identity.name} version {identity.version} not registered: {exc}",
            )


def validation_failure(predictor: TaskPredictor) -> str | None:
    """``edgeft validate`` on the served model (recorded beside the bundle); why it failed."""
    from edgeft.runtime.validation import validate_bundle, write_validation_record

    try:
        report = validate_bundle(predictor.bundle, models=[predictor.model])
    except EdgeftError as exc:
        return f"validation could not run: {exc}"
    try:
        write_validation_record(report)
    except OSError as exc:  # a read-only bundle location: the verdict still holds
        log.warning("validation passed but could not be recorded: %s", exc)
    return "; ".join(report.failures()) or None


def production_versions(repository: ModelRepository) -> dict[str, tuple[str, Path]]:
    """Each model of the repository and the version its ``production`` alias names (else its
    newest), as a server following the repository wants them."""
    out = {}
    for name in repository.models():
        try:
            version = repository.resolve(name)
        except EdgeftError as exc:
            log.error("%s: %s", name, exc)
            continue
        out[name] = (str(version.version), version.path)
    return out


def finite(probabilities: np.ndarray) -> np.ndarray:
    """Inputs far outside what the model saw can overflow it; that is the input's fault."""
    if not np.isfinite(probabilities).all():
        raise ProtocolError(
            "the model's output is not finite for this input; are its values in the range the "
            "model was trained on?"
        )
    return probabilities


async def on_current(
    models: ServedModels,
    name: str,
    version: str | None,
    handle: Callable[[LoadedModel], Awaitable[T]],
) -> T:
    """``handle`` on the version serving ``name`` now; a request that met a version being
    swapped out is handled again, whole, by the one that replaced it."""
    for _ in range(3):
        try:
            return await handle(models.get(name, version))
        except BatcherStopped:
            continue
    raise Overloaded(f"model {name!r} is being swapped; retry shortly")

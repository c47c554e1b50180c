"""The runtime of a bundle, whatever its task: the one place that picks ``Predictor``
(classification) or ``AnomalyDetector`` by the bundle's ``task``, and the interface both give
serving, the batcher and the prediction log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgeft.bundle import Bundle, ModelEntry, TensorSpec
from edgeft.bundle.manifest import ANOMALY_TASK
from edgeft.errors import EdgeftError
from edgeft.runtime.encoders import InputEncoder
from edgeft.runtime.engines import EngineSession, open_session
from edgeft.runtime.model_choice import ModelChoice
from edgeft.targets import Host, TargetProfile


class TaskOutputs(Protocol):
    """A batch's outputs: sliced by rows for each request; ``probabilities`` (N, labels) and
    ``embedding`` (the monitoring sketch, or None) are what the prediction log keeps."""

    probabilities: np.ndarray

    @property
    def embedding(self) -> np.ndarray | None: ...

    def __len__(self) -> int: ...

    def __getitem__(self, rows: slice) -> Any: ...


class TaskPredictor(Protocol):
    bundle: Bundle
    model: ModelEntry
    choice: ModelChoice
    labels: list[str]
    temperature: float

    @property
    def encoder(self) -> InputEncoder: ...

    def warm_up(self, batch_sizes: Sequence[int] = (1,)) -> None: ...

    def outputs(self, inputs: Mapping[str, np.ndarray]) -> Any: ...

    def output_specs(self) -> list[TensorSpec]: ...

    def output_tensors(self, outputs: Any) -> dict[str, np.ndarray]: ...

    def rows(self, outputs: Any, top_k: int = 5) -> list[dict[str, object]]: ...


def open_model_session(
    bundle: Bundle, entry: ModelEntry, threads: int | None = None, **settings: object
) -> EngineSession:
    """One model of ``bundle`` as an engine session with what the box runs after it: for an
    anomaly bundle the search and scoring too, so timings and memory are the whole model's."""
    path = bundle.path_of(entry)
    if bundle.manifest.anomaly is None:
        return open_session(
            entry.engine, path, threads=threads, precision=entry.precision, **settings
        )
    from edgeft.runtime.anomaly.detector import SPINNING, AnomalyHead, AnomalyPipeline

    session = open_session(
        entry.engine, path, threads=threads, precision=entry.precision, spinning=SPINNING,
        **settings,
    )  # fmt: skip
    return AnomalyPipeline(session, AnomalyHead(bundle, entry.engine, threads, entry))


def open_predictor(
    bundle: str | Path | Bundle,
    engine: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
    target: TargetProfile | None = None,
    allow_mismatch: bool = False,
    host: Host | None = None,
    calibrated: bool = False,
) -> TaskPredictor:
    """The bundle's runtime for its task, with ``Predictor``'s options."""
    loaded = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    if loaded.manifest.task == ANOMALY_TASK:
        from edgeft.runtime.anomaly.detector import AnomalyDetector

        if calibrated:
            raise EdgeftError(
                "--calibrated scales class probabilities; an anomaly score is calibrated by "
                "its threshold (edgeft threshold)"
            )
        return AnomalyDetector(loaded, engine, precision, threads, target, allow_mismatch, host)
    from edgeft.runtime.predictor import Predictor

    return Predictor(
        loaded, engine, precision, threads, target, allow_mismatch, host, calibrated=calibrated
    )

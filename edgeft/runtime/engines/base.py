"""The small interface every inference engine implements, and the registry that picks one."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgeft.engine_registry import import_backend


class EngineSession(ABC):
    """A compiled model on one engine: named numpy arrays in, output arrays out."""

    engine: str

    @abstractmethod
    def __init__(self, model_path: Path, threads: int | None = None, **settings: object) -> None:
        """Load and compile; ``threads`` None means the engine's default."""

    @property
    @abstractmethod
    def input_names(self) -> list[str]: ...

    @abstractmethod
    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """One inference; returned arrays are owned by the caller."""

    def throughput(self, inputs: Mapping[str, np.ndarray], duration_s: float) -> float:
        """Items per second, running as many requests at once as the engine wants.

        The default is back-to-back calls; engines with parallel streams override it.
        """
        batch = len(next(iter(inputs.values())))
        calls, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < duration_s or calls == 0:
            self.run(inputs)
            calls += 1
        return calls * batch / elapsed


_BACKENDS = {
    "onnxruntime": "edgeft.runtime.engines.onnxruntime_session:OnnxRuntimeSession",
    "openvino": "edgeft.runtime.engines.openvino_session:OpenVINOSession",
}


def session_class(engine: str) -> type[EngineSession]:
    return import_backend(_BACKENDS, engine, f"one of {', '.join(_BACKENDS)}")


def open_session(
    engine: str, model_path: Path, threads: int | None = None, **settings: object
) -> EngineSession:
    return session_class(engine)(model_path, threads=threads, **settings)

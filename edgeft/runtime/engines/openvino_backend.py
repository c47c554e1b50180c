"""OpenVINO on CPU.

``precision="fp32"`` sets INFERENCE_PRECISION_HINT=f32: on CPUs with bf16 (AMX, AVX-512 BF16)
OpenVINO otherwise runs an fp32 model in bf16, a different (faster, less exact) model than the
one measured. ``engine_default_precision=True`` leaves OpenVINO's choice (benchmarks show both).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import openvino as ov

from edgeft.errors import EdgeftError
from edgeft.runtime.engines.base import EngineSession

_CORE: ov.Core | None = None


def _core() -> ov.Core:
    global _CORE
    if _CORE is None:
        _CORE = ov.Core()
    return _CORE


class OpenVINOSession(EngineSession):
    engine = "openvino"

    def __init__(self, model_path: Path, threads: int | None = None, **settings: object) -> None:
        config: dict[str, object] = {"PERFORMANCE_HINT": str(settings.get("hint", "LATENCY"))}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if settings.get("streams"):
            config["NUM_STREAMS"] = int(settings["streams"])  # type: ignore[call-overload]
        if settings.get("precision") == "fp32" and not settings.get("engine_default_precision"):
            config["INFERENCE_PRECISION_HINT"] = "f32"
        device = str(settings.get("device", "CPU"))
        try:
            self._compiled = _core().compile_model(str(model_path), device, config)
        except RuntimeError as exc:
            raise EdgeftError(
                f"{model_path}: OpenVINO cannot compile it on {device} ({exc})"
            ) from exc
        self._request = self._compiled.create_infer_request()

    @property
    def input_names(self) -> list[str]:
        return [port.any_name for port in self._compiled.inputs]

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        # share_inputs=False: by default OpenVINO keeps a view of the caller's arrays.
        results = self._request.infer(dict(inputs), share_inputs=False, share_outputs=False)
        return [results[port] for port in self._compiled.outputs]

    def throughput(self, inputs: Mapping[str, np.ndarray], duration_s: float) -> float:
        """OpenVINO's own way: an async queue of the compiled model's optimal request count."""
        queue = ov.AsyncInferQueue(
            self._compiled, self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
        )
        batch = len(next(iter(inputs.values())))
        data = dict(inputs)
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < duration_s or calls < len(queue):
            queue.start_async(data)
            calls += 1
        queue.wait_all()
        return calls * batch / (time.perf_counter() - started)

"""OpenVINO on CPU.

``precision="fp32"`` sets INFERENCE_PRECISION_HINT=f32: on CPUs with bf16 (AMX, AVX-512 BF16)
OpenVINO otherwise runs an fp32 model in bf16, a different (faster, less exact) model than the
one measured. ``engine_default_precision=True`` leaves OpenVINO's choice (benchmarks show both).
``exact=True`` turns the CPU plugin's low-precision transformations off: every FakeQuantize is
evaluated in float, the int8 arithmetic a VNNI CPU computes exactly, on any CPU.
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
    """Compiles the model as given (dynamic batch) and, for image-like models whose other axes
    are fixed, a static-shape copy per batch size seen (up to ``MAX_STATIC_SHAPES``), as
    benchmark_app's ``-shape`` does: the CPU plugin picks faster kernels for static shapes."""

    engine = "openvino"
    MAX_STATIC_SHAPES = 4

    def __init__(self, model_path: Path, threads: int | None = None, **settings: object) -> None:
        config: dict[str, object] = {"PERFORMANCE_HINT": str(settings.get("hint", "LATENCY"))}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if settings.get("streams"):
            config["NUM_STREAMS"] = int(settings["streams"])  # type: ignore[call-overload]
        if settings.get("precision") == "fp32" and not settings.get("engine_default_precision"):
            config["INFERENCE_PRECISION_HINT"] = "f32"
        if settings.get("exact"):  # in f32 too: bf16 would be a different model again
            config |= {"LP_TRANSFORMS_MODE": "NO", "INFERENCE_PRECISION_HINT": "f32"}
        self._device = str(settings.get("device", "CPU"))
        self._config = config
        self._path = model_path
        try:
            self._model = _core().read_model(str(model_path))
        except RuntimeError as exc:
            raise EdgeftError(f"{model_path}: OpenVINO cannot read it ({exc})") from exc
        self._compiled = self._compile(self._model)
        self._request = self._compiled.create_infer_request()
        self._output_count = len(self._compiled.outputs)
        self._only_batch_dynamic = all(
            port.get_partial_shape().rank.is_static
            and all(d.is_static for d in list(port.get_partial_shape())[1:])
            for port in self._model.inputs
        )
        self._static: dict[tuple, ov.InferRequest] = {}

    def _compile(self, model: ov.Model) -> ov.CompiledModel:
        try:
            return _core().compile_model(model, self._device, self._config)
        except RuntimeError as exc:
            raise EdgeftError(
                f"{self._path}: OpenVINO cannot compile it on {self._device} ({exc})"
            ) from exc

    def _request_for(self, inputs: Mapping[str, np.ndarray]) -> ov.InferRequest:
        if not self._only_batch_dynamic:
            return self._request
        key = tuple(sorted((name, array.shape) for name, array in inputs.items()))
        request = self._static.get(key)
        if request is None:
            if len(self._static) >= self.MAX_STATIC_SHAPES:
                return self._request
            model = self._model.clone()
            try:
                model.reshape(
                    {name: ov.PartialShape(array.shape) for name, array in inputs.items()}
                )
            except RuntimeError:
                return self._request  # let the dynamic model report what is wrong
            request = self._static[key] = self._compile(model).create_infer_request()
        return request

    @property
    def input_names(self) -> list[str]:
        return [port.any_name for port in self._compiled.inputs]

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        # share_inputs=False: by default OpenVINO keeps a view of the caller's arrays.
        request = self._request_for(inputs)
        request.infer(dict(inputs), share_inputs=False, share_outputs=True)
        return [request.get_output_tensor(i).data.copy() for i in range(self._output_count)]

    def throughput(self, inputs: Mapping[str, np.ndarray], duration_s: float) -> float:
        """OpenVINO's own way: an async queue of the compiled model's optimal request count."""
        compiled = self._request_for(inputs).get_compiled_model()
        queue = ov.AsyncInferQueue(
            compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
        )
        batch = len(next(iter(inputs.values())))
        data = dict(inputs)
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < duration_s or calls < len(queue):
            queue.start_async(data)
            calls += 1
        queue.wait_all()
        return calls * batch / (time.perf_counter() - started)

"""ONNX Runtime on CPU (other execution providers come with the target profiles).

``exact=True`` turns graph optimisation off, so a QDQ model runs as float operators on
dequantized values instead of fused int8 kernels: the int8 arithmetic a VNNI CPU computes exactly,
reproduced on a CPU whose own int8 kernels would saturate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

import numpy as np
import onnxruntime as ort

from edgeft.errors import EdgeftError
from edgeft.runtime.engines.base import EngineSession


class OnnxRuntimeSession(EngineSession):
    engine = "onnxruntime"

    def __init__(self, model_path: Path, threads: int | None = None, **settings: object) -> None:
        options = ort.SessionOptions()
        if settings.get("exact"):
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        if settings.get("spinning") is False:
            # idle threads sleep at once instead of spinning: where other work (another
            # session, numpy) runs between this session's calls on the same few cores
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = list(cast(Sequence[str], settings.get("providers") or ["CPUExecutionProvider"]))
        try:
            self._session = ort.InferenceSession(str(model_path), options, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            raise EdgeftError(f"{model_path}: ONNX Runtime cannot load it ({exc})") from exc

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self._session.get_inputs()]

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return self._session.run(None, dict(inputs))

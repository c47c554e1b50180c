"""The small interface each int8 engine implements, and the registry that picks one by name.

A backend quantizes one fp32 model file with a named *setting* (calibration method and engine
options), optionally keeping some layers in floating point, and knows which layers it could keep.
The accuracy-budget loop (``edgeft.quantize.budget``) drives it without knowing the engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from edgeft.bundle import model_files
from edgeft.bundle.manifest import int8_file
from edgeft.engine_registry import import_backend
from edgeft.quantize.float_fallback import FloatFallback, fewest_float_layers
from edgeft.runtime.scoring import EncodedSplit
from edgeft.targets.int8_scheme import QuantizationScheme

# As NNCF's ModelType: transformers keep softmax, layer norms and residual sums in float.
ModelType = Literal["cnn", "transformer"]


class Int8Quantizer(ABC):
    engine: str

    def __init__(
        self,
        fp32_path: Path,
        calibration: EncodedSplit,
        scheme: QuantizationScheme,
        workdir: Path,
        validation: EncodedSplit | None = None,
        model_type: ModelType = "cnn",
        budget_metric: str = "accuracy",
        exact: bool = False,
    ) -> None:
        """``budget_metric`` is what the budget holds; ``exact`` says candidates are judged in
        exact int8 arithmetic (this host's kernels would saturate on the scheme), so an engine's
        own accuracy search, which runs this host's kernels, must not be used."""
        self.fp32_path = fp32_path
        self.calibration = calibration
        self.scheme = scheme
        self.workdir = workdir
        self.validation = validation
        self.model_type = model_type
        self.budget_metric = budget_metric
        self.exact = exact
        # rewrites of the graph around calibration, by name -> how many places (for the manifest)
        self.rewrites: dict[str, int] = {}

    @property
    def int8_file(self) -> str:
        """Where this scheme's int8 model lives inside a bundle."""
        return int8_file(self.engine, self.scheme.key)

    @classmethod
    def engine_scheme(cls, scheme: QuantizationScheme) -> QuantizationScheme:
        """The part of ``scheme`` this engine's quantizer follows: targets whose schemes agree
        on it share one model file."""
        return scheme

    @abstractmethod
    def settings(self, method: str) -> list[str]:
        """Named settings to try, in order, for ``--method`` (``auto`` tries several)."""

    @abstractmethod
    def quantize(self, setting: str, out: Path, keep_float: Sequence[str] = ()) -> None:
        """Write the int8 model of ``setting`` to ``out`` (plus any side files next to it)."""

    @abstractmethod
    def layers(self) -> list[str]:
        """Quantizable layers, by the names ``keep_float`` accepts, in graph order."""

    def restore_accuracy(self, search: FloatFallback) -> list[str] | None:
        """Keep at most ``search.max_float_layers`` of the most sensitive layers in floating
        point until ``search.validate`` is within ``search.max_drop``; return those layers, or
        None if none gets there. The default is ``edgeft.quantize.float_fallback``'s leave-one-out
        search."""
        return fewest_float_layers(self, search)

    def files_of(self, out: Path) -> list[Path]:
        """The files a written model consists of."""
        return model_files(out)


_BACKENDS = {
    "onnxruntime": "edgeft.quantize.backends.onnxruntime_backend:OnnxRuntimeQuantizer",
    "openvino": "edgeft.quantize.backends.openvino_backend:OpenVINOQuantizer",
}


def quantizer_class(engine: str) -> type[Int8Quantizer]:
    return import_backend(_BACKENDS, engine, f"{', '.join(_BACKENDS)} or all")

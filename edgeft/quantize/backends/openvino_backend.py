"""OpenVINO int8 through NNCF post-training quantization, and NNCF's accuracy control.

Variants are the knobs NNCF documents as worth trying on a model that loses accuracy: the
default, full (not fast) bias correction, and the mixed preset (asymmetric activations). On
targets whose int8 products saturate (the scheme says so), every setting quantizes weights to
7 bits (NNCF's overflow fix in every layer).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import nncf
import numpy as np
import openvino as ov
from nncf.quantization.advanced_parameters import (
    AdvancedAccuracyRestorerParameters,
    AdvancedQuantizationParameters,
    OverflowFix,
)
from nncf.quantization.range_estimator import RangeEstimatorParametersSet

from edgeft.errors import EdgeftError
from edgeft.library_noise import quiet_nncf
from edgeft.quantize.backends.base import Int8Quantizer
from edgeft.quantize.float_fallback import FloatFallback
from edgeft.targets.int8_scheme import QuantizationScheme

_LAYER_OPS = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "MatMul")
_SETTINGS: dict[str, dict[str, Any]] = {
    "default": {},
    "accurate-bias": {"fast_bias_correction": False},
    "mixed": {"preset": nncf.QuantizationPreset.MIXED},
    "percentile": {"activations_range_estimator_params": RangeEstimatorParametersSet.MEAN_QUANTILE},
    "histogram": {"activations_range_estimator_params": RangeEstimatorParametersSet.HISTOGRAM},
}
_ADVANCED = {"activations_range_estimator_params"}  # AdvancedQuantizationParameters' fields
_BY_METHOD = {
    "auto": ["default", "accurate-bias", "mixed"],
    # NNCF's default ranges: per-item extremes, averaged for per-tensor activations
    "minmax": ["default"],
    "mean-minmax": ["default"],
    "percentile": ["percentile"],
    "entropy": ["histogram"],
}


class OpenVINOQuantizer(Int8Quantizer):
    engine = "openvino"

    @classmethod
    def engine_scheme(cls, scheme: QuantizationScheme) -> QuantizationScheme:
        """NNCF's OpenVINO int8 has one scheme knob here: 7-bit weights where products saturate."""
        return QuantizationScheme(reduce_range=scheme.avoids_saturation)

    def settings(self, method: str) -> list[str]:
        if method not in _BY_METHOD:
            raise EdgeftError(
                f"unknown calibration method {method!r}; choose {', '.join(_BY_METHOD)}"
            )
        return _BY_METHOD[method]

    def _model(self) -> ov.Model:
        return ov.Core().read_model(str(self.fp32_path))

    @cached_property
    def _examples(self) -> list[dict[str, np.ndarray]]:
        """One example per item: NNCF's statistics (bias correction) assume batch 1."""
        return self.calibration.one_per_item()

    def _nncf_arguments(self, setting: str, keep_float: Sequence[str]) -> dict[str, Any]:
        options = dict(_SETTINGS[setting])
        advanced = {key: options.pop(key) for key in _ADVANCED & set(options)}
        overflow_fix = (
            OverflowFix.ENABLE if self.scheme.avoids_saturation else OverflowFix.FIRST_LAYER
        )
        arguments: dict[str, Any] = {
            "subset_size": len(self._examples),
            "advanced_parameters": AdvancedQuantizationParameters(
                overflow_fix=overflow_fix, **advanced
            ),
        } | options
        if self.model_type == "transformer":
            arguments["model_type"] = nncf.ModelType.TRANSFORMER
        if keep_float:
            arguments["ignored_scope"] = nncf.IgnoredScope(names=list(keep_float))
        return arguments

    def quantize(self, setting: str, out: Path, keep_float: Sequence[str] = ()) -> None:
        try:
            with quiet_nncf():
                quantized = nncf.quantize(
                    self._model(),
                    nncf.Dataset(self._examples),
                    **self._nncf_arguments(setting, keep_float),
                )
        except (nncf.ValidationError, RuntimeError) as exc:
            raise EdgeftError(f"NNCF could not quantize {self.fp32_path.name}: {exc}") from exc
        out.parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(quantized, str(out))

    def restore_accuracy(self, search: FloatFallback) -> list[str] | None:
        """NNCF's accuracy control: it ranks quantized layers on the validation data and
        reverts the worst to float until the drop is within ``max_drop`` points. It needs labels;
        without them (a zoo model calibrated on a folder) the budget is agreement with fp32,
        which the leave-one-out ranking of the base class follows, as it does for another budget
        metric and for a scheme judged in exact arithmetic (NNCF would rank on this host's
        saturating kernels)."""
        if (
            self.validation is None
            or self.validation.labels is None
            or self.exact
            or self.budget_metric != "accuracy"
        ):
            return super().restore_accuracy(search)
        validation = list(
            zip(self.validation.one_per_item(), self.validation.labels.tolist(), strict=True)
        )

        def accuracy(compiled: ov.CompiledModel, items: list) -> tuple[float, list[float]]:
            hits = [
                float(np.argmax(compiled(inputs)[0], axis=1)[0] == label) for inputs, label in items
            ]
            return float(np.mean(hits)), hits

        arguments = self._nncf_arguments(search.setting, ())
        # The same parameters under the name accuracy control gives them.
        arguments["advanced_quantization_parameters"] = arguments.pop("advanced_parameters")
        try:
            with quiet_nncf():
                quantized = nncf.quantize_with_accuracy_control(
                    self._model(),
                    nncf.Dataset(self._examples),
                    nncf.Dataset(validation),
                    accuracy,
                    max_drop=search.max_drop / 100.0,
                    drop_type=nncf.DropType.ABSOLUTE,
                    advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                        max_num_iterations=search.max_float_layers
                    ),
                    **arguments,
                )
        except (nncf.ValidationError, RuntimeError) as exc:
            raise EdgeftError(
                f"NNCF accuracy control failed on {self.fp32_path.name}: {exc}"
            ) from exc
        search.out.parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(quantized, str(search.out))
        drop, _ = search.validate(search.out)
        kept = float_layers(quantized)
        return kept if drop <= search.max_drop and len(kept) <= search.max_float_layers else None

    def layers(self) -> list[str]:
        return [
            op.get_friendly_name()
            for op in self._model().get_ordered_ops()
            if op.get_type_name() in _LAYER_OPS
        ]


def float_layers(model: ov.Model) -> list[str]:
    """Layers whose weights are not int8 (no FakeQuantize or int8 constant feeds them)."""
    kept = []
    for op in model.get_ordered_ops():
        if (
            op.get_type_name() in _LAYER_OPS
            and op.get_input_size() > 1
            and not _quantized_input(op.input_value(1).get_node())
        ):
            kept.append(op.get_friendly_name())
    return kept


def _quantized_input(node: Any, depth: int = 0) -> bool:
    kind = node.get_type_name()
    if kind in ("FakeQuantize", "FakeConvert"):
        return True
    if kind == "Constant":
        return node.get_element_type() in (ov.Type.i8, ov.Type.u8, ov.Type.i4, ov.Type.u4)
    if depth > 6 or node.get_input_size() == 0:
        return False
    return any(
        _quantized_input(node.input_value(i).get_node(), depth + 1)
        for i in range(node.get_input_size())
    )

"""ONNX Runtime static quantization: QDQ format, per-channel int8 weights, calibrated ranges.
With ``reduce_range`` (CPUs without VNNI) only the weights whose kernels saturate take 7 bits.
For CNNs, depthwise-convolution inputs are equalized first
(``edgeft.quantize.depthwise_equalization``), standing in for the per-channel activation ranges
ONNX Runtime's kernels lack, and the int8 biases absorb each layer's mean output shift
(``edgeft.quantize.bias_correction``). For transformers, the layers left in float (residual sums,
norms, softmax) read float tensors, not the rounded copies made for the matrix products
(``edgeft.quantize.float_readers``).

Calibration methods: ONNX Runtime's minmax (the extremes over the whole set), percentile and
entropy, and ``mean-minmax``: the mean over calibration items of each item's extremes, NNCF's
default for per-tensor activations, which one outlying image cannot stretch. It assumes each item
spans most of a tensor's range; where items differ wholesale (a tensor positive for one class,
negative for the other) it clips them, so ``auto`` tries it after minmax and the budget decides.

Ranges are computed once per calibration method and cached (ONNX Runtime's own calibration
cache), so re-quantizing with layers kept in float for the accuracy budget costs only the graph
rewrite, not another calibration pass.

Transformers also get ``dynamic``, tried first under ``auto``: ONNX Runtime's dynamic
quantization (what ``optimum-cli onnxruntime quantize`` makes), weights int8 in the file and
activations quantized per call from their own range, so no calibration range can clip them. It
needs uint8 activations and kernels this host runs faithfully (not offered where the budget is
judged in exact arithmetic).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgeft.errors import EdgeftError
from edgeft.library_noise import quiet_onnxruntime
from edgeft.quantize.backends.base import Int8Quantizer, ModelType
from edgeft.quantize.bias_correction import correct_biases, measure_bias_shifts
from edgeft.quantize.depthwise_equalization import conv_groups, equalize_depthwise_inputs
from edgeft.quantize.float_readers import feed_float_readers
from edgeft.quantize.shared_initializers import unshare_initializers
from edgeft.runtime.scoring import EncodedSplit
from edgeft.targets.int8_scheme import QuantizationScheme

_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "mean-minmax": CalibrationMethod.MinMax,  # averaged per item: see ``quantize``
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
_LAYER_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# Transformers: the matrix products and the embedding lookups (most of the weights) in int8;
# softmax, layer norms and residual sums stay in float (their ranges are wide and their errors
# compound through every block).
_TRANSFORMER_OPS = ["MatMul", "Gemm", "Gather"]
_QUANTIZER_ERRORS = (ValueError, RuntimeError, IndexError, onnx.checker.ValidationError)


class _BatchReader(CalibrationDataReader):
    """Feeds encoded batches; ``set_range`` lets ORT collect histograms one batch at a time."""

    def __init__(self, data: EncodedSplit) -> None:
        self.batches = data.batches
        self.set_range(0, len(self.batches))

    def get_next(self) -> dict | None:
        if self.position >= self.end:
            return None
        self.position += 1
        return self.batches[self.position - 1]

    def set_range(self, start_index: int, end_index: int) -> None:
        self.position, self.end = start_index, end_index

    def __len__(self) -> int:
        return len(self.batches)


class OnnxRuntimeQuantizer(Int8Quantizer):
    engine = "onnxruntime"

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
        super().__init__(
            fp32_path, calibration, scheme, workdir, validation, model_type, budget_metric, exact
        )
        self.prepared = workdir / "onnxruntime-prepared.onnx"
        # per setting, each layer's measured bias shift (it does not depend on the other layers)
        self._bias_shifts: dict[str, dict[str, np.ndarray]] = {}
        try:
            # Shape inference and graph optimisation first, as ONNX Runtime advises.
            with quiet_onnxruntime():
                quant_pre_process(str(fp32_path), str(self.prepared), skip_symbolic_shape=True)
        except Exception as exc:  # ORT raises many types; the raw graph still quantizes
            logging.getLogger(__name__).warning(
                "quant_pre_process failed (%s); using raw graph", exc
            )
            self.prepared.write_bytes(fp32_path.read_bytes())
        graph = onnx.load(str(self.prepared))
        unshared = unshare_initializers(graph)
        equalized = (
            equalize_depthwise_inputs(graph, calibration.batches) if model_type == "cnn" else 0
        )
        if equalized:
            self.rewrites["depthwise_inputs_equalized"] = equalized
        if unshared or equalized:
            onnx.save(graph, str(self.prepared))

    def settings(self, method: str) -> list[str]:
        if method == "auto":
            dynamic = (
                self.model_type == "transformer"
                and self.scheme.activations == "uint8"
                and not self.exact
            )
            return ["dynamic"] * dynamic + ["minmax", "mean-minmax", "percentile", "entropy"]
        if method not in _METHODS:
            raise EdgeftError(
                f"unknown calibration method {method!r}; choose {', '.join(_METHODS)} or auto"
            )
        return [method]

    def quantize(self, setting: str, out: Path, keep_float: Sequence[str] = ()) -> None:
        unknown = set(keep_float) - set(self.layers())
        if unknown:
            raise EdgeftError(
                f"no such layer(s) in {self.fp32_path.name}: {', '.join(sorted(unknown))}"
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        if setting == "dynamic":
            self._quantize_dynamic(out, keep_float)
            return
        histogram = setting in ("entropy", "percentile")
        options = {
            "ActivationSymmetric": self.scheme.activations == "int8",
            "CalibPercentile": 99.999,
            # Keep classifier logits in float: 256 levels over a 1000-class logit range turn
            # near-ties into flipped top-1 answers (NNCF leaves the last output alone too).
            # A transformer's matrix products hand float to what follows, so attention scores
            # reach the softmax, and biases the residual sums, unrounded (the float islands).
            "OpTypesToExcludeOutputQuantization": ["Gemm"]
            + (["MatMul"] if self.model_type == "transformer" else []),
        }
        if histogram:
            options["CalibStridedMinMax"] = 1  # one batch of full activations in memory at a time
        calibration = self.calibration
        if setting == "mean-minmax":
            # ONNX Runtime's moving-average option takes the mean of each batch's extremes
            # within one calibration pass; batches of one item make that the per-item mean.
            options["CalibMovingAverage"] = True
            calibration = EncodedSplit(self.calibration.one_per_item(), None, [])
        if self.scheme.reduce_range:
            # An override without "axis" makes ONNX Runtime quantize that weight per tensor.
            options["TensorQuantOverrides"] = {
                weight: [
                    {"reduce_range": True} | ({"axis": axis} if self.scheme.per_channel else {})
                ]
                for weight, axis in self._saturating.items()
            }
        activations = QuantType.QUInt8 if self.scheme.activations == "uint8" else QuantType.QInt8
        op_types = _TRANSFORMER_OPS if self.model_type == "transformer" else None
        try:
            with quiet_onnxruntime():
                quantize_static(
                    str(self.prepared),
                    str(out),
                    _BatchReader(calibration),
                    quant_format=QuantFormat.QDQ,
                    per_channel=self.scheme.per_channel,
                    reduce_range=False,  # per weight, in the overrides above
                    activation_type=activations,
                    weight_type=self._weight_type,
                    nodes_to_exclude=list(keep_float),
                    op_types_to_quantize=op_types,
                    calibrate_method=_METHODS[setting],
                    extra_options=options,
                    calibration_cache_path=self.workdir / f"onnxruntime-ranges-{setting}.json",
                )
        except _QUANTIZER_ERRORS as exc:
            raise EdgeftError(
                f"ONNX Runtime could not quantize {self.fp32_path.name}: {exc}"
            ) from exc
        if self.model_type == "cnn":
            self._correct_biases(setting, out)
        else:
            self._feed_float_readers(out, keep_float)

    def _feed_float_readers(self, out: Path, keep_float: Sequence[str]) -> None:
        model = onnx.load(str(out))
        rewired = feed_float_readers(model, _TRANSFORMER_OPS, keep_float)
        self.rewrites["float_inputs_restored"] = rewired
        onnx.save(model, str(out))

    def _quantize_dynamic(self, out: Path, keep_float: Sequence[str]) -> None:
        """Weights int8 in the file, activations quantized per call (MatMulInteger); 7-bit
        weights everywhere where the scheme says the kernels saturate."""
        try:
            with quiet_onnxruntime():
                quantize_dynamic(
                    str(self.prepared),
                    str(out),
                    per_channel=self.scheme.per_channel,
                    reduce_range=self.scheme.reduce_range,
                    weight_type=self._weight_type,
                    nodes_to_exclude=list(keep_float),
                    op_types_to_quantize=_TRANSFORMER_OPS,
                )
        except _QUANTIZER_ERRORS as exc:
            raise EdgeftError(
                f"ONNX Runtime could not quantize {self.fp32_path.name} dynamically: {exc}"
            ) from exc

    @property
    def _weight_type(self) -> QuantType:
        return QuantType.QUInt8 if self.scheme.weights == "uint8" else QuantType.QInt8

    def _correct_biases(self, setting: str, out: Path) -> None:
        model = onnx.load(str(out))
        shifts = self._bias_shifts.setdefault(setting, {})
        shifts |= measure_bias_shifts(
            model, self._prepared_graph, self.calibration.batches, skip=shifts
        )
        self.rewrites["biases_corrected"] = correct_biases(model, shifts)
        onnx.save(model, str(out))

    @cached_property
    def _prepared_graph(self) -> onnx.ModelProto:
        """The float graph every setting quantizes (read once)."""
        return onnx.load(str(self.prepared))

    @cached_property
    def _saturating(self) -> dict[str, int]:
        """Weights whose products ONNX Runtime sums in saturating 16 bits without VNNI, with
        their output-channel axis: every layer's but depthwise convolutions', whose kernel widens
        to 16 bits before multiplying. Only these take 7 bits (``reduce_range``): every bit kept
        is accuracy kept."""
        graph = self._prepared_graph.graph
        weights = {i.name: i for i in graph.initializer}
        chosen = {}
        for node in graph.node:
            if node.op_type not in _LAYER_OPS or len(node.input) < 2:
                continue
            weight = weights.get(node.input[1])
            groups = conv_groups(node)
            if weight is not None and not (groups > 1 and groups == weight.dims[0]):
                chosen[weight.name] = _output_channel_axis(node)
        return chosen

    def layers(self) -> list[str]:
        return self._layers

    @cached_property
    def _layers(self) -> list[str]:
        graph = self._prepared_graph.graph
        return [n.name for n in graph.node if n.op_type in _LAYER_OPS and n.name]


def _output_channel_axis(node: onnx.NodeProto) -> int:
    """The weight axis of a layer's output channels, as ONNX Runtime quantizes it per channel."""
    if node.op_type == "Gemm":
        return 0 if any(a.name == "transB" and a.i for a in node.attribute) else 1
    return {"ConvTranspose": 1, "MatMul": -1}.get(node.op_type, 0)

"""Bias correction for ONNX Runtime's QDQ graphs: NNCF's fast bias correction, measured exactly.

Rounding a layer's weights and its input moves the mean of each of its output channels, and the
layers after it take that shift for signal. For every Conv/Gemm with a quantized bias, the shift is
measured on the calibration data: the float graph's output of the layer against the same layer in
int8 (its input quantizer, int8 weights and bias: a subgraph of the QDQ model) fed the float
graph's input, so each layer's correction answers for its own rounding only and does not depend on
which other layers are quantized. The int32 bias absorbs the shift, unless that would move some
bias by at least twice its own size (NNCF's threshold: there the mean error is mostly noise).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from edgeft.quantize.graph_probe import cpu_session, with_outputs

THRESHOLD = 2.0  # skip a layer whose correction is at least this multiple of its bias
_LAYERS = ("Conv", "Gemm")
_ITEMS_PER_RUN = 8  # float activations of every layer for this many items are held at once


@dataclass(frozen=True)
class _QuantizedLayer:
    name: str
    input: str  # the float tensor its input quantizer reads
    output: str  # its output in the QDQ graph (pre-activation: ONNX Runtime folds ReLU away)
    bias: onnx.NodeProto  # the DequantizeLinear of its int32 bias


def measure_bias_shifts(
    qdq: onnx.ModelProto,
    float_model: onnx.ModelProto,
    batches: Iterable[Mapping[str, np.ndarray]],
    skip: Iterable[str] = (),
) -> dict[str, np.ndarray]:
    """Per layer name (except ``skip``), the mean per-channel output of the float layer minus
    that of its int8 version, both fed the float graph's input on ``batches``."""
    float_outputs = {n.name: n.output[0] for n in float_model.graph.node if n.name}
    skipped = set(skip)
    layers = [
        layer
        for layer in _quantized_layers(qdq)
        if layer.name in float_outputs and layer.name not in skipped
    ]
    if not layers:
        return {}
    wanted = sorted({layer.input for layer in layers} | {float_outputs[x.name] for x in layers})
    float_session = cpu_session(with_outputs(float_model, wanted), exact=True)
    extractor = onnx.utils.Extractor(onnx.shape_inference.infer_shapes(qdq))
    int8_sessions = [
        cpu_session(extractor.extract_model([layer.input], [layer.output]), exact=True)
        for layer in layers
    ]
    sums: list[np.ndarray | float] = [0.0] * len(layers)
    counts = [0] * len(layers)
    for batch in batches:
        size = len(next(iter(batch.values())))
        for start in range(0, size, _ITEMS_PER_RUN):
            inputs = {k: v[start : start + _ITEMS_PER_RUN] for k, v in batch.items()}
            values = dict(zip(wanted, float_session.run(wanted, inputs), strict=True))
            for i, (layer, session) in enumerate(zip(layers, int8_sessions, strict=True)):
                int8 = session.run(None, {layer.input: values[layer.input]})[0]
                error = values[float_outputs[layer.name]] - int8
                axes = (0, *range(2, error.ndim))
                sums[i] = sums[i] + error.sum(axis=axes, dtype=np.float64)
                counts[i] += error.size // error.shape[1]
    return {layer.name: np.asarray(s) / n for layer, s, n in zip(layers, sums, counts, strict=True)}


def correct_biases(qdq: onnx.ModelProto, shifts: Mapping[str, np.ndarray]) -> int:
    """Add each layer's measured shift to its int32 bias in place; return how many layers took
    it (the others have no shift measured, or fail the threshold)."""
    initializers = {i.name: i for i in qdq.graph.initializer}
    corrected = 0
    for layer in _quantized_layers(qdq):
        shift = shifts.get(layer.name)
        if shift is None:
            continue
        quantized = initializers[layer.bias.input[0]]
        scale = numpy_helper.to_array(initializers[layer.bias.input[1]]).astype(np.float64)
        bias = numpy_helper.to_array(quantized).astype(np.float64) * scale
        if np.any(np.abs(shift) >= THRESHOLD * np.abs(bias)):
            continue
        limits = np.iinfo(np.int32)
        updated = np.clip(np.round((bias + shift) / scale), limits.min, limits.max)
        quantized.CopyFrom(numpy_helper.from_array(updated.astype(np.int32), quantized.name))
        corrected += 1
    return corrected


def _quantized_layers(qdq: onnx.ModelProto) -> list[_QuantizedLayer]:
    """Conv/Gemm nodes whose input goes through a QuantizeLinear/DequantizeLinear pair and whose
    bias is an int32 DequantizeLinear."""
    producer = {out: node for node in qdq.graph.node for out in node.output}
    layers = []
    for node in qdq.graph.node:
        if node.op_type not in _LAYERS or len(node.input) < 3 or not node.name:
            continue
        bias = producer.get(node.input[2])
        dequantize = producer.get(node.input[0])
        quantize = producer.get(dequantize.input[0]) if dequantize is not None else None
        if (
            bias is not None
            and bias.op_type == "DequantizeLinear"
            and dequantize is not None
            and dequantize.op_type == "DequantizeLinear"
            and quantize is not None
            and quantize.op_type == "QuantizeLinear"
        ):
            layers.append(_QuantizedLayer(node.name, quantize.input[0], node.output[0], bias))
    return layers

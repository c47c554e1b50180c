"""Running an ONNX graph in ONNX Runtime to read tensors it does not output: the calibration-time
rewrites (depthwise equalization, bias correction) measure intermediate activations this way."""

from __future__ import annotations

from collections.abc import Iterable

import onnx
import onnxruntime as ort


def with_outputs(model: onnx.ModelProto, tensors: Iterable[str]) -> onnx.ModelProto:
    """A copy of ``model`` that also outputs ``tensors``."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    present = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=t) for t in tensors if t not in present)
    return probe


def cpu_session(model: onnx.ModelProto, exact: bool = False) -> ort.InferenceSession:
    """A CPU session of ``model``; ``exact`` turns graph optimizations off, so that a QDQ graph
    computes its quantize/dequantize pairs in float (as written) instead of fused int8 kernels."""
    options = ort.SessionOptions()
    if exact:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )

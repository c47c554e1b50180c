"""Per-channel ranges for depthwise-convolution inputs in an ONNX graph that takes one per tensor.

ONNX Runtime's QLinearConv quantizes its input with one scale per tensor, but the inputs of
MobileNet-style depthwise convolutions differ by channel by orders of magnitude (the pretrained
MobileNetV2's first block: channel maxima from 0.06 to 3.6), so the small channels keep a few
int8 levels. NNCF gives those inputs a scale per channel. This rewrite gets the same effect in
ONNX Runtime's kernels: in each ``Conv -> Relu|Clip(0, 6) -> depthwise Conv`` chain it multiplies
channel ``c`` of the first convolution by ``s_c`` (from the calibration maxima: narrow channels
are widened towards the widest) and divides the depthwise filter ``c`` by ``s_c``. Both weights
are quantized per output channel, so neither loses precision, and the narrow channels of the
activation get more of its int8 levels.

ReLU6 is not scale-equivariant, but on the calibration data no scaled channel passes the widest
channel's maximum (at most 6), where the activation quantizer clips anyway, so the float graph's
answers are unchanged there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from edgeft.quantize.graph_probe import cpu_session, with_outputs

# Each channel is scaled up to half the widest channel's calibrated maximum, by at most 8x.
# Full equalization (no headroom, no cap) would clip channels at exactly their calibration
# maxima, which unseen images exceed, and blow up channels all but dead in calibration.
HEADROOM = 2.0
MAX_SCALE = 8.0


@dataclass(frozen=True)
class _Chain:
    producer: onnx.NodeProto  # the full convolution whose output channels are scaled
    activation: onnx.NodeProto  # its Relu or Clip(0, ...): the depthwise input
    depthwise: onnx.NodeProto


def equalize_depthwise_inputs(model: onnx.ModelProto, batches: Iterable[dict]) -> int:
    """Rescale ``model``'s initializers in place from the activations on ``batches``; returns
    how many depthwise convolutions were equalized."""
    chains = _chains(model.graph)
    if not chains:
        return 0
    maxima = _channel_maxima(model, [c.activation.output[0] for c in chains], batches)
    initializers = {i.name: i for i in model.graph.initializer}

    def rescale(name: str, factor: np.ndarray, divide: bool = False) -> None:
        array = numpy_helper.to_array(initializers[name])
        factor = factor.reshape(-1, *[1] * (array.ndim - 1))
        scaled = array / factor if divide else array * factor
        initializers[name].CopyFrom(numpy_helper.from_array(scaled.astype(array.dtype), name))

    for chain, channel_max in zip(chains, maxima, strict=True):
        live = channel_max > 0
        scale = np.ones_like(channel_max)
        wanted = channel_max.max() / (HEADROOM * channel_max[live])
        scale[live] = np.clip(wanted, 1.0, MAX_SCALE)
        rescale(chain.producer.input[1], scale)
        if len(chain.producer.input) > 2 and chain.producer.input[2]:
            rescale(chain.producer.input[2], scale)
        rescale(chain.depthwise.input[1], scale, divide=True)
    return len(chains)


def _chains(graph: onnx.GraphProto) -> list[_Chain]:
    """Chains whose middle tensors feed nothing else and whose weights are initializers."""
    initializers = {i.name: i for i in graph.initializer}
    constants = _constants(graph)
    producers = {out: node for node in graph.node for out in node.output}
    uses: dict[str, int] = {o.name: 1 for o in graph.output}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    chains = []
    for node in graph.node:
        if not _is_conv(node, initializers) or not _is_depthwise(node, initializers):
            continue
        activation = producers.get(node.input[0])
        if activation is None or not _is_relu(activation, constants):
            continue
        producer = producers.get(activation.input[0])
        if (
            producer is not None
            and _is_conv(producer, initializers)
            and conv_groups(producer) == 1
            and uses.get(producer.output[0]) == 1
            and uses.get(activation.output[0]) == 1
        ):
            chains.append(_Chain(producer, activation, node))
    return chains


def conv_groups(node: onnx.NodeProto) -> int:
    """A Conv node's ``group`` attribute (1 when absent, as ONNX defines it)."""
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def _is_conv(node: onnx.NodeProto, initializers: dict) -> bool:
    return (
        node.op_type == "Conv"
        and node.input[1] in initializers
        and (len(node.input) < 3 or not node.input[2] or node.input[2] in initializers)
    )


def _is_depthwise(node: onnx.NodeProto, initializers: dict) -> bool:
    dims = initializers[node.input[1]].dims
    groups = conv_groups(node)
    return groups > 1 and groups == dims[0] and dims[1] == 1


def _is_relu(node: onnx.NodeProto, constants: dict[str, onnx.TensorProto]) -> bool:
    """Relu, or Clip with a constant lower bound of 0 (ReLU6)."""
    if node.op_type == "Relu":
        return True
    if node.op_type != "Clip" or len(node.input) < 2 or node.input[1] not in constants:
        return False
    return float(numpy_helper.to_array(constants[node.input[1]])) == 0.0


def _constants(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    """Initializers and Constant nodes' tensors (exporters write small constants as either)."""
    found = {i.name: i for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            found[node.output[0]] = node.attribute[0].t
    return found


def _channel_maxima(
    model: onnx.ModelProto, tensors: list[str], batches: Iterable[dict]
) -> list[np.ndarray]:
    """Per-channel maxima (over batch and space) of ``tensors`` on ``batches``."""
    session = cpu_session(with_outputs(model, tensors))
    per_batch = [
        [o.max(axis=(0, *range(2, o.ndim))) for o in session.run(tensors, batch)]
        for batch in batches
    ]
    if not per_batch:
        raise ValueError("no calibration batches")
    return [np.max(found, axis=0) for found in zip(*per_batch, strict=True)]

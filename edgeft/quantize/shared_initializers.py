"""Give each consumer of a shared initializer its own copy where quantizing it once would be wrong.

The ONNX exporter stores equal tensors once (a freshly initialised network has many zero biases
and unit norm weights), and ONNX Runtime's graph optimiser folds the Identity nodes that kept
their uses apart. ONNX Runtime's quantizer then quantizes such a tensor for its first quantized
consumer and rewires every consumer to the dequantized copy: a layer norm left in float reads an
8-bit bias, and every other layer's int32 bias carries the first layer's scale. Sharing is kept
where it is harmless: consumers of one op type reading the tensor at the same input, other than
a bias (a tied weight quantizes the same for each).
"""

from __future__ import annotations

import onnx

# Inputs that ONNX Runtime quantizes with the consumer's own scales (int32 biases).
_BIAS_INPUTS = {("Conv", 2), ("ConvTranspose", 2), ("Gemm", 2)}


def unshare_initializers(model: onnx.ModelProto) -> int:
    """Copy shared initializers per consumer where their uses differ; returns the copies made."""
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    uses: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in initializers:
                uses.setdefault(name, []).append((node, index))
    copies = 0
    for name, consumers in uses.items():
        kinds = {(node.op_type, index) for node, index in consumers}
        if len(consumers) < 2 or (len(kinds) == 1 and not kinds & _BIAS_INPUTS):
            continue
        for number, (node, index) in enumerate(consumers[1:], start=1):
            copy = onnx.TensorProto()
            copy.CopyFrom(initializers[name])
            copy.name = f"{name}.use{number}"
            graph.initializer.append(copy)
            node.input[index] = copy.name
            copies += 1
    return copies

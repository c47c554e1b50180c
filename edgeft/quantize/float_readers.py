"""Layers left in float read float tensors, not the rounded copy made for an int8 neighbour.

ONNX Runtime's QDQ quantizer gives a quantized activation one QuantizeLinear/DequantizeLinear
pair and rewires every consumer of the tensor to the dequantized copy, quantized or not. In a
transformer the layer norm's output feeds both the next block's matrix products (int8) and the
residual sum (float by design), so without this rewrite the residual stream is rounded to 8 bits
in every block. A tensor that a quantized layer itself produces (an embedding lookup's int8 rows)
has no float original: its readers keep the dequantized rows.
"""

from __future__ import annotations

from collections.abc import Collection

import onnx


def feed_float_readers(
    model: onnx.ModelProto, quantized_ops: Collection[str], kept_float: Collection[str] = ()
) -> int:
    """Point every float layer that reads ``DequantizeLinear(QuantizeLinear(x))`` at ``x``.

    A node is quantized when its op type is in ``quantized_ops`` and its name is not in
    ``kept_float``; Q/DQ nodes are left alone. Returns how many inputs were rewired."""
    graph = model.graph
    producer = {output: node for node in graph.node for output in node.output}

    def quantized(node: onnx.NodeProto) -> bool:
        return node.op_type in quantized_ops and node.name not in kept_float

    originals: dict[str, str] = {}  # dequantized copy -> the float tensor it rounds
    for node in graph.node:
        quantize = producer.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if quantize is None or quantize.op_type != "QuantizeLinear":
            continue
        source = producer.get(quantize.input[0])
        if source is None or not quantized(source):
            originals[node.output[0]] = quantize.input[0]
    rewired = 0
    for node in graph.node:
        if quantized(node) or node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        for index, name in enumerate(node.input):
            if name in originals:
                node.input[index] = originals[name]
                rewired += 1
    return rewired

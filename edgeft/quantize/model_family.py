"""Which quantization settings a graph needs, read from the graph itself.

Attention multiplies two activations (queries by keys, weights by values); a CNN's matrix
products all have a constant operand. A graph with an activation-by-activation MatMul is a
transformer: NNCF's transformer model type and ONNX Runtime's float islands (softmax, norms and
residual sums left in float) apply, whatever the task, so a ViT is quantized like MiniLM.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from edgeft.quantize.backends.base import ModelType


def graph_model_type(path: str | Path) -> ModelType:
    graph = onnx.load(str(path), load_external_data=False).graph
    constant = {t.name for t in graph.initializer}
    for node in graph.node:  # topological order, as ONNX requires
        if node.op_type == "Constant" or (node.input and all(i in constant for i in node.input)):
            constant.update(node.output)
        elif node.op_type == "MatMul" and not any(i in constant for i in node.input):
            return "transformer"
    return "cnn"

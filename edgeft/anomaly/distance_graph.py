"""The nearest-neighbour step as a small ONNX graph both engines run: the squared distance of
each query row to its nearest row of one bank chunk. The bank is an input, not a weight, so one
graph serves any bank size (``NearestSearch`` feeds it chunk by chunk) and the bank stays a
plain hashed file of the bundle."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from edgeft.export.onnx_export import OPSET
from edgeft.runtime.anomaly.search import BANK, QUERIES, SQUARED_DISTANCE


def write_distance_graph(path: Path) -> None:
    """``queries [Q, C]``, ``bank [K, C]`` -> ``squared_distance [Q]``, as
    |q|^2 - 2 q.b + |b|^2 minimised over the chunk (one matrix product)."""
    nodes = [
        helper.make_node("ReduceSumSquare", [QUERIES], ["query_norms"], axes=[1], keepdims=1),
        helper.make_node("ReduceSumSquare", [BANK], ["bank_norms"], axes=[1], keepdims=0),
        helper.make_node("Transpose", [BANK], ["bank_t"], perm=[1, 0]),
        helper.make_node("MatMul", [QUERIES, "bank_t"], ["dots"]),
        helper.make_node("Mul", ["dots", "two"], ["twice_dots"]),
        helper.make_node("Add", ["query_norms", "bank_norms"], ["norm_sums"]),
        helper.make_node("Sub", ["norm_sums", "twice_dots"], ["squared"]),
        helper.make_node("ReduceMin", ["squared"], ["nearest"], axes=[1], keepdims=0),
        helper.make_node("Max", ["nearest", "zero"], [SQUARED_DISTANCE]),
    ]
    graph = helper.make_graph(
        nodes,
        "nearest_distance",
        [
            helper.make_tensor_value_info(QUERIES, TensorProto.FLOAT, ["queries", "channels"]),
            helper.make_tensor_value_info(BANK, TensorProto.FLOAT, ["rows", "channels"]),
        ],
        [helper.make_tensor_value_info(SQUARED_DISTANCE, TensorProto.FLOAT, ["queries"])],
        initializer=[
            helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgeft", ir_version=8
    )
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))

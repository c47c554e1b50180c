"""A tensor the exporter stored once for several layers is copied per consumer where quantizing it
once would be wrong (biases, uses by different ops), and stays shared where it is harmless."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgeft.quantize.shared_initializers import unshare_initializers


def _model() -> onnx.ModelProto:
    """x -> Gemm(W, zeros) -> Gemm(W, zeros) -> LayerNorm(ones, zeros) -> MatMul(V) -> MatMul(V)."""
    rng = np.random.default_rng(0)
    tensors = {
        "W": rng.normal(size=(4, 4)).astype(np.float32),
        "V": rng.normal(size=(4, 4)).astype(np.float32),
        "zeros": np.zeros(4, np.float32),
        "ones": np.ones(4, np.float32),
    }
    nodes = [
        helper.make_node("Gemm", ["x", "W", "zeros"], ["a"], name="first"),
        helper.make_node("Gemm", ["a", "W", "zeros"], ["b"], name="second"),
        helper.make_node("LayerNormalization", ["b", "ones", "zeros"], ["c"], name="norm"),
        helper.make_node("MatMul", ["c", "V"], ["d"], name="third"),
        helper.make_node("MatMul", ["d", "V"], ["y"], name="fourth"),
    ]
    graph = helper.make_graph(
        nodes,
        "shared",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [numpy_helper.from_array(v, k) for k, v in tensors.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_biases_and_mixed_uses_get_their_own_copy_tied_weights_stay_shared() -> None:
    model, x = _model(), np.random.default_rng(1).normal(size=(2, 4)).astype(np.float32)
    before = _run(model, x)
    assert unshare_initializers(model) == 2  # the second Gemm's and the norm's zero bias
    inputs = {n.name: list(n.input) for n in model.graph.node}
    biases = [inputs["first"][2], inputs["second"][2], inputs["norm"][2]]
    assert len(set(biases)) == 3
    assert inputs["first"][1] == inputs["second"][1] == "W"  # one op, same input: shared
    assert inputs["third"][1] == inputs["fourth"][1] == "V"
    assert inputs["norm"][1] == "ones"
    onnx.checker.check_model(model)
    np.testing.assert_array_equal(_run(model, x), before)
    assert unshare_initializers(model) == 0  # nothing left to copy

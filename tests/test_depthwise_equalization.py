"""Depthwise-input equalization: the float graph keeps its answers, the narrow channels of the
depthwise input are widened, and ONNX Runtime's int8 model gets closer to fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static
from torch import nn

from edgeft.quantize.depthwise_equalization import (
    HEADROOM,
    MAX_SCALE,
    _channel_maxima,
    equalize_depthwise_inputs,
)


def _uneven_block(path: Path) -> list[dict[str, np.ndarray]]:
    """Conv -> ReLU6 -> depthwise conv whose 8 channels' activations span 0.03 to ~3 (as in
    MobileNetV2's first block) while its outputs are alike; returns calibration batches."""
    torch.manual_seed(0)
    block = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU6(), nn.Conv2d(8, 8, 3, padding=1, groups=8)
    ).eval()
    with torch.no_grad():
        spread = torch.logspace(-1.5, 0.5, 8).view(8, 1, 1, 1)
        block[0].weight.mul_(spread)
        block[0].bias.fill_(0.0)
        block[2].weight.div_(spread)  # as folded batch norms do: every output channel matters
    example = torch.randn(1, 3, 12, 12)
    torch.onnx.export(
        block,
        (example,),
        str(path),
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
        dynamo=False,
    )
    rng = np.random.default_rng(0)
    return [{"x": rng.normal(size=(4, 3, 12, 12)).astype(np.float32)} for _ in range(8)]


class _Reader(CalibrationDataReader):
    def __init__(self, batches: list[dict[str, np.ndarray]]) -> None:
        self.items = iter(batches)

    def get_next(self) -> dict | None:
        return next(self.items, None)


def _outputs(path: Path, batches: list[dict[str, np.ndarray]]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, batch)[0] for batch in batches])


def test_narrow_channels_widen_float_answers_hold_and_int8_error_falls(tmp_path: Path) -> None:
    batches = _uneven_block(tmp_path / "block.onnx")
    model = onnx.load(str(tmp_path / "block.onnx"))
    activation = next(n.output[0] for n in model.graph.node if n.op_type == "Clip")
    before = _channel_maxima(model, [activation], batches)[0]
    assert before.max() / before.min() > 50  # uneven to begin with

    assert equalize_depthwise_inputs(model, batches) == 1
    onnx.save(model, str(tmp_path / "equalized.onnx"))
    after = _channel_maxima(model, [activation], batches)[0]
    widened = np.minimum(before * MAX_SCALE, before.max() / HEADROOM)
    np.testing.assert_allclose(after, np.maximum(before, widened), rtol=1e-4)
    reference = _outputs(tmp_path / "block.onnx", batches)
    np.testing.assert_allclose(
        _outputs(tmp_path / "equalized.onnx", batches), reference, rtol=1e-4, atol=1e-5
    )

    errors = {}
    for name in ("block", "equalized"):
        quantize_static(
            str(tmp_path / f"{name}.onnx"),
            str(tmp_path / f"{name}-int8.onnx"),
            _Reader(batches),
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        int8 = _outputs(tmp_path / f"{name}-int8.onnx", batches)
        errors[name] = float(np.abs(int8 - reference).mean())
    assert errors["equalized"] < 0.5 * errors["block"], errors


def test_graphs_without_the_chain_are_left_alone(tmp_path: Path) -> None:
    """A depthwise conv fed by an input (no activation to rescale) is not touched."""
    _uneven_block(tmp_path / "block.onnx")
    model = onnx.load(str(tmp_path / "block.onnx"))
    first = next(n for n in model.graph.node if n.op_type == "Conv")
    model.graph.node.remove(first)  # the Clip now reads a graph input: no producer conv
    model.graph.input.append(onnx.helper.make_tensor_value_info(first.output[0], 1, None))
    before = [i.SerializeToString() for i in model.graph.initializer]
    assert equalize_depthwise_inputs(model, []) == 0
    assert [i.SerializeToString() for i in model.graph.initializer] == before

"""ONNX Runtime's activation ranges per calibration method: ``minmax`` spans every calibration
item, ``mean-minmax`` averages each item's extremes, so one outlying image cannot stretch it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edgeft.quantize import QuantizationScheme
from edgeft.quantize.backends.onnxruntime_backend import OnnxRuntimeQuantizer
from edgeft.runtime.scoring import EncodedSplit
from tests.test_depthwise_equalization import _uneven_block


def _input_scale(path: Path, tensor: str) -> float:
    model = onnx.load(str(path))
    initializers = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    node = next(
        n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == tensor
    )
    return float(initializers[node.input[1]])


def test_mean_minmax_averages_per_item_extremes_where_minmax_spans_them_all(
    tmp_path: Path,
) -> None:
    fp32 = tmp_path / "block.onnx"
    batches = _uneven_block(fp32)
    batches[0]["x"][0] *= 8.0  # one outlying item
    (tmp_path / "work").mkdir()
    quantizer = OnnxRuntimeQuantizer(
        fp32, EncodedSplit(batches, None, []), QuantizationScheme(), tmp_path / "work"
    )
    scales = {}
    for method in ("minmax", "mean-minmax"):
        quantizer.quantize(method, tmp_path / f"{method}.onnx")
        scales[method] = _input_scale(tmp_path / f"{method}.onnx", "x")

    items = np.concatenate([b["x"] for b in batches]).reshape(32, -1)
    # uint8, asymmetric: 255 steps from the low end to the high end of the range
    assert np.isclose(scales["minmax"], (items.max() - items.min()) / 255, rtol=1e-5)
    per_item = (items.max(axis=1).mean() - items.min(axis=1).mean()) / 255
    assert np.isclose(scales["mean-minmax"], per_item, rtol=1e-5)
    assert scales["mean-minmax"] < 0.5 * scales["minmax"]

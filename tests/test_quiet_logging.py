"""Silencing ONNX Runtime's quantizer (its root-logger warnings, its calibrators' prints) leaves the
root logger, stdout and everyone else's messages alone outside the block."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.quant_utils import update_opset_version

from edgeft.library_noise import quiet_onnxruntime


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def collected() -> Iterator[_Collect]:
    handler = _Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


def _onnxruntime_warns() -> None:
    """ONNX Runtime itself calls the module-level ``logging.warning`` (an opset-10 notice)."""
    graph = helper.make_graph([], "empty", [], [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    update_opset_version(model, QuantType.QInt8)


def test_only_onnxruntime_quantizer_warnings_are_dropped_and_only_inside(
    collected: _Collect,
) -> None:
    root = logging.getLogger()
    level, filters = root.level, list(root.filters)
    with quiet_onnxruntime():
        _onnxruntime_warns()
        logging.getLogger("edgeft.quantize").warning("edgeft warning inside")
        logging.warning("another library's root warning inside")
        assert root.level == level
    assert collected.messages == [
        "edgeft warning inside",
        "another library's root warning inside",
    ]
    assert root.level == level and root.filters == filters
    _onnxruntime_warns()
    assert "opset version is 10" in collected.messages[-1]


def test_the_filter_goes_even_when_quantizing_fails(collected: _Collect) -> None:
    filters = list(logging.getLogger().filters)
    with pytest.raises(onnx.checker.ValidationError), quiet_onnxruntime():
        raise onnx.checker.ValidationError("broken graph")
    assert logging.getLogger().filters == filters
    _onnxruntime_warns()
    assert collected.messages and "opset version is 10" in collected.messages[-1]


def _entropy_quantize(tmp_path: Path) -> None:
    """A real histogram calibration: ONNX Runtime ``print``s its progress while it runs."""
    weight = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
        [weight],
    )
    fp32 = tmp_path / "fp32.onnx"
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), fp32
    )
    items = iter(
        [{"x": np.random.default_rng(i).normal(size=(1, 4)).astype(np.float32)} for i in range(4)]
    )

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict | None:
            return next(items, None)

    quantize_static(str(fp32), str(tmp_path / "int8.onnx"), Reader(),
                    calibrate_method=CalibrationMethod.Entropy)  # fmt: skip


def test_histogram_calibration_prints_nothing_inside_and_stdout_comes_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with quiet_onnxruntime():
        _entropy_quantize(tmp_path)
    print("edgeft's own line")
    assert capsys.readouterr().out == "edgeft's own line\n"
    _entropy_quantize(tmp_path)
    assert "histogram" in capsys.readouterr().out  # the library still prints outside the block

"""Silencing ONNX Runtime's quantizer leaves the root logger and everyone else's messages alone."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import onnx
import pytest
from onnx import helper
from onnxruntime.quantization import QuantType
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

"""ONNX -> OpenVINO IR (model.xml + model.bin), weights kept in fp32."""

from __future__ import annotations

from pathlib import Path

import openvino as ov


def export_openvino(onnx_path: Path, xml_path: Path) -> None:
    """Convert the checked ONNX file, so both engines run the same graph."""
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml_path), compress_to_fp16=False)

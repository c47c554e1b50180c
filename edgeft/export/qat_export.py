"""A QAT model (NNCF fake quantization) -> int8 ONNX in QDQ form and int8 OpenVINO IR.

NNCF's quantizers export as QuantizeLinear/DequantizeLinear pairs; ONNX Runtime's basic graph
optimisation then folds each weight's QuantizeLinear into an int8 initializer, so the file
stores int8 weights (about 4x smaller) and both engines read the same graph.
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import torch
from torch import nn

from edgeft.export.onnx_export import export_onnx
from edgeft.library_noise import quiet_nncf_torch


def export_qat_onnx(
    model: nn.Module,
    example: dict[str, torch.Tensor],
    output_names: list[str],
    path: Path,
    dynamic_axes: dict[str, dict[int, str]],
) -> float:
    """Write the int8 QDQ model to ``path``; return its relative deviation from the torch QAT
    model (int8 kernels round differently from fake quantization, so it is measured, not bound)."""
    with quiet_nncf_torch():
        # imported here: exports and quantizations of runs without QAT never load NNCF's torch side
        from nncf.torch.quantization.layers import BaseQuantizer, QuantizerExportMode

        for module in model.modules():
            if isinstance(module, BaseQuantizer):
                module.set_export_mode(QuantizerExportMode.ONNX_QUANTIZE_DEQUANTIZE_PAIRS)
        raw = path.with_name(f".{path.stem}.qdq.onnx")
        try:
            deviation = export_onnx(model, example, output_names, raw, dynamic_axes, tolerance=None)
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            options.optimized_model_filepath = str(path)
            ort.InferenceSession(str(raw), options, providers=["CPUExecutionProvider"])
        finally:
            raw.unlink(missing_ok=True)
    return deviation

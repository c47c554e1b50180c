"""``edgeft export``: a trained (or pretrained) network -> a bundle with fp32 ONNX and OpenVINO IR."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import torch

from edgeft.bundle import (
    Bundle,
    ImagePreprocessing,
    Manifest,
    ModelEntry,
    TensorSpec,
    stage_bundle,
    write_manifest,
)
from edgeft.errors import EdgeftError
from edgeft.export.onnx_export import export_onnx
from edgeft.export.openvino_export import export_openvino
from edgeft.zoo import get_model

ONNX_FILE = "model.onnx"
OPENVINO_FILE = "openvino/model.xml"


def export_bundle(source: str, out: str | Path, overwrite: bool = False) -> Bundle:
    """Export a zoo model (its pretrained head and labels: the zero-shot baseline) to ``out``."""
    entry = get_model(source)
    labels = entry.labels()
    if not labels:
        raise EdgeftError(
            f"{source} has no pretrained classification head to export; fine-tune it first"
        )
    spec = entry.preprocessing
    if not isinstance(spec, ImagePreprocessing):
        raise EdgeftError(f"{source}: only image models export from the zoo directly")
    model = entry.create().eval()
    example = {"input": torch.randn(2, 3, *spec.crop, generator=torch.Generator().manual_seed(0))}
    with stage_bundle(out, overwrite=overwrite) as staging:
        deviation = export_onnx(
            model,
            example,
            ["logits"],
            staging / ONNX_FILE,
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
        export_openvino(staging / ONNX_FILE, staging / OPENVINO_FILE)
        checked = {"max_relative_deviation_vs_torch": deviation}
        manifest = Manifest(
            task=entry.task,
            labels=labels,
            preprocessing=spec,
            inputs=[TensorSpec("input", (-1, 3, *spec.crop), "float32")],
            outputs=[TensorSpec("logits", (-1, len(labels)), "float32")],
            models=[
                ModelEntry(ONNX_FILE, "onnxruntime", "fp32", details=checked),
                ModelEntry(OPENVINO_FILE, "openvino", "fp32"),
            ],
            provenance={
                "base_model": entry.name,
                "weights": entry.weights_source,
                "fine_tuned": False,
                "versions": {p: version(p) for p in ("edgeft", "torch", "onnx", "openvino")},
            },
        )
        write_manifest(staging, manifest)
    return Bundle.load(out)

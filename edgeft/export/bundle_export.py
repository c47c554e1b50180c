"""``edgeft export``: a trained (or pretrained) network -> a bundle with fp32 ONNX and OpenVINO IR."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeft.bundle import (
    Bundle,
    ImagePreprocessing,
    Manifest,
    ModelEntry,
    TensorSpec,
    preprocessing_from_dict,
    stage_bundle,
    write_manifest,
)
from edgeft.errors import EdgeftError
from edgeft.export.onnx_export import export_onnx
from edgeft.export.openvino_export import export_openvino
from edgeft.train.checkpoint import load_weights
from edgeft.train.finetune import MODEL, RECIPE, RUN
from edgeft.zoo import get_model

ONNX_FILE = "model.onnx"
OPENVINO_FILE = "openvino/model.xml"


@dataclass
class ExportSource:
    """A network ready to export, with what the manifest needs to say about it."""

    model: nn.Module
    task: str
    labels: list[str]
    preprocessing: ImagePreprocessing
    provenance: dict[str, Any]


def load_source(source: str | Path) -> ExportSource:
    """A run folder from ``edgeft finetune`` (its best weights), or a zoo name (pretrained head)."""
    run_file = Path(source) / RUN
    if run_file.is_file():
        run = json.loads(run_file.read_text())
        recipe = json.loads((Path(source) / RECIPE).read_text())
        entry = get_model(run["model"], weights=recipe.get("weights"))
        model = entry.create(num_classes=len(run["labels"]))
        load_weights(model, Path(source) / MODEL)
        preprocessing = preprocessing_from_dict(run["preprocessing"])
        provenance = {
            "base_model": run["model"],
            "fine_tuned": True,
            "run": str(source),
            "dataset": run["dataset"],
            "recipe": recipe,
        }
        return ExportSource(model, run["task"], run["labels"], preprocessing, provenance)
    entry = get_model(str(source))
    if not entry.labels():
        raise EdgeftError(
            f"{source} has no pretrained classification head to export; fine-tune it first"
        )
    if not isinstance(entry.preprocessing, ImagePreprocessing):
        raise EdgeftError(f"{source}: only image models export from the zoo directly")
    provenance = {"base_model": entry.name, "weights": entry.weights_source, "fine_tuned": False}
    return ExportSource(entry.create(), entry.task, entry.labels(), entry.preprocessing, provenance)


def export_bundle(
    source: str | Path | ExportSource, out: str | Path, overwrite: bool = False
) -> Bundle:
    """Export a run folder, a zoo model (the zero-shot baseline) or your own network (an
    ``ExportSource``) to the bundle ``out``."""
    loaded = source if isinstance(source, ExportSource) else load_source(source)
    spec, labels = loaded.preprocessing, loaded.labels
    model = loaded.model.eval()
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
            task=loaded.task,
            labels=labels,
            preprocessing=spec,
            inputs=[TensorSpec("input", (-1, 3, *spec.crop), "float32")],
            outputs=[TensorSpec("logits", (-1, len(labels)), "float32")],
            models=[
                ModelEntry(ONNX_FILE, "onnxruntime", "fp32", details=checked),
                ModelEntry(OPENVINO_FILE, "openvino", "fp32"),
            ],
            provenance=loaded.provenance
            | {"versions": {p: version(p) for p in ("edgeft", "torch", "onnx", "openvino")}},
        )
        write_manifest(staging, manifest)
    return Bundle.load(out)

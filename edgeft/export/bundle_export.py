"""``edgeft export``: a trained (or pretrained) network -> a bundle with fp32 ONNX and OpenVINO IR."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from torch import nn

from edgeft.bundle import (
    MODEL_FILES,
    Bundle,
    ImagePreprocessing,
    Manifest,
    ModelEntry,
    Preprocessing,
    TensorSpec,
    TextPreprocessing,
    preprocessing_from_dict,
    stage_bundle,
    write_manifest,
)
from edgeft.bundle.acceptance import DEFAULT_SIZE
from edgeft.bundle.labels import check_class_names
from edgeft.bundle.manifest import qat_file
from edgeft.data import ClassificationDataset
from edgeft.errors import EdgeftError
from edgeft.evaluation.bundle_eval import dataset_from_provenance
from edgeft.export.acceptance import record_outputs, store_acceptance_set
from edgeft.export.embedding_sketch import (
    EMBEDDING,
    FEATURES,
    FeatureTap,
    SketchProjection,
    project_features_output,
)
from edgeft.export.model_inputs import model_inputs
from edgeft.export.onnx_export import export_onnx
from edgeft.export.openvino_export import export_openvino
from edgeft.export.qat_export import export_qat_onnx
from edgeft.export.reference_statistics import build_reference_statistics
from edgeft.targets import QuantizationScheme
from edgeft.train.checkpoint import load_weights
from edgeft.train.qat import restore_qat_model
from edgeft.train.run_folder import MODEL, QAT_MODEL, RECIPE, RUN
from edgeft.zoo import get_model, rebuild

log = logging.getLogger("edgeft.export")

ONNX_FILE = MODEL_FILES["onnxruntime"]
OPENVINO_FILE = MODEL_FILES["openvino"]


@dataclass
class ExportSource:
    """A network ready to export, with what the manifest needs to say about it."""

    model: nn.Module
    task: str
    labels: list[str]
    preprocessing: Preprocessing
    provenance: dict[str, Any]
    qat_model: nn.Module | None = None  # fake-quantized (NNCF) twin, exported as the int8 models
    files: dict[str, Path] = field(default_factory=dict)  # bundle name -> file, e.g. tokenizer


def load_source(source: str | Path) -> ExportSource:
    """A run folder from ``edgeft finetune`` (its best weights), or a zoo name (pretrained head)."""
    run_file = Path(source) / RUN
    if run_file.is_file():
        run = json.loads(run_file.read_text())
        recipe = json.loads((Path(source) / RECIPE).read_text())
        entry = (
            rebuild(run["architecture"], Path(source))
            if "architecture" in run
            else get_model(run["model"], weights=recipe.get("weights"))
        )
        model = entry.create(num_classes=len(run["labels"]), pretrained=False)
        load_weights(model, Path(source) / MODEL)
        preprocessing = preprocessing_from_dict(run["preprocessing"])
        provenance = {
            "base_model": run["model"],
            "architecture": run.get("architecture"),
            "fine_tuned": True,
            "run": str(source),
            "dataset": run["dataset"],
            "recipe": recipe,
        }
        qat_model = None
        if (Path(source) / QAT_MODEL).is_file():
            qat_model = restore_qat_model(
                entry.create(num_classes=len(run["labels"]), pretrained=False), Path(source)
            )
        files = {}
        if isinstance(preprocessing, TextPreprocessing):
            files[preprocessing.tokenizer] = Path(source) / preprocessing.tokenizer
        return ExportSource(
            model, run["task"], run["labels"], preprocessing, provenance, qat_model, files
        )
    entry = get_model(str(source))
    if not entry.labels():
        raise EdgeftError(
            f"{source} has no pretrained classification head to export; fine-tune it first"
        )
    if not isinstance(entry.preprocessing, ImagePreprocessing):
        raise EdgeftError(f"{source}: only image models export from the zoo directly")
    provenance = {"base_model": entry.name, "weights": entry.weights_source, "fine_tuned": False}
    return ExportSource(entry.create(), entry.task, entry.labels(), entry.preprocessing, provenance)


def _recorded_dataset(provenance: dict[str, Any]) -> ClassificationDataset | None:
    """The dataset the run recorded, for the acceptance set; one that cannot be read any more
    (moved, changed) leaves the bundle without one, with a warning, rather than no bundle."""
    try:
        return dataset_from_provenance(provenance)
    except EdgeftError as exc:
        log.warning("no acceptance set in the bundle: %s", exc)
        return None


def export_bundle(
    source: str | Path | ExportSource,
    out: str | Path,
    overwrite: bool = False,
    acceptance_size: int = DEFAULT_SIZE,
) -> Bundle:
    """Export a run folder, a zoo model (the zero-shot baseline) or your own network (an
    ``ExportSource``) to the bundle ``out``. Where the provenance names a dataset, its
    validation split gives the monitoring reference profile (and the graph an embedding sketch
    output), and a stratified sample of ``acceptance_size`` validation items travels in the
    bundle (0: none), with every model's outputs on it. An anomaly run (``edgeft finetune
    --task anomaly``) goes to ``edgeft.anomaly.export``."""
    if not isinstance(source, ExportSource):
        from edgeft.anomaly.export import export_anomaly_bundle, is_anomaly_run

        if is_anomaly_run(source):
            return export_anomaly_bundle(source, out, overwrite, acceptance_size)
    loaded = source if isinstance(source, ExportSource) else load_source(source)
    # Labels become class folders downstream (monitor --export-uncertain, retraining data).
    check_class_names(loaded.labels, "labels" if source is loaded else source)
    dataset = _recorded_dataset(loaded.provenance)
    spec, labels = loaded.preprocessing, loaded.labels
    model = loaded.model.eval()
    inputs = model_inputs(spec, model)
    example, axes = inputs.example, inputs.dynamic_axes
    # With a validation split the graph also outputs its pooled features, projected below.
    names = ["logits"] if dataset is None else ["logits", FEATURES]
    axes = axes | {FEATURES: {0: "batch"}} if dataset is not None else axes
    with stage_bundle(out, overwrite=overwrite) as staging:
        for name, file in loaded.files.items():
            shutil.copyfile(file, staging / name)
        tap = model if dataset is None else FeatureTap(model)
        deviation = export_onnx(tap, example, names, staging / ONNX_FILE, axes)
        checked = {"max_relative_deviation_vs_torch": deviation}
        models = [
            ModelEntry(ONNX_FILE, "onnxruntime", "fp32", details=checked),
            ModelEntry(OPENVINO_FILE, "openvino", "fp32"),
        ]
        manifest = Manifest(
            task=loaded.task,
            labels=labels,
            preprocessing=spec,
            inputs=inputs.specs,
            outputs=[TensorSpec("logits", (-1, len(labels)), "float32")],
            models=models,
            provenance=loaded.provenance
            | {"versions": {p: version(p) for p in ("edgeft", "torch", "onnx", "openvino")}},
        )
        projection = None
        if dataset is not None:
            profile, projection = build_reference_statistics(staging, manifest, ONNX_FILE, dataset)
            project_features_output(str(staging / ONNX_FILE), projection)
            manifest.reference = profile.write(staging)
            sketch = TensorSpec(EMBEDDING, (-1, projection.width), "float32")
            manifest.outputs.append(sketch)
        export_openvino(staging / ONNX_FILE, staging / OPENVINO_FILE)
        if loaded.qat_model is not None:
            manifest.models += _export_qat(
                loaded.qat_model, example, names, axes, staging, projection
            )
        if dataset is not None and acceptance_size > 0:
            manifest.acceptance = store_acceptance_set(staging, dataset, spec, acceptance_size)
        write_manifest(staging, record_outputs(staging, manifest))
    return Bundle.load(out)


def _export_qat(
    qat_model: nn.Module,
    example: dict[str, Any],
    names: list[str],
    axes: dict[str, dict[int, str]],
    staging: Path,
    projection: SketchProjection | None,
) -> list[ModelEntry]:
    """The fake-quantized twin as int8 candidates, with the fp32 graph's sketch projection."""
    onnx_qat, openvino_qat = qat_file("onnxruntime"), qat_file("openvino")
    tap = qat_model if projection is None else FeatureTap(qat_model)
    deviation = export_qat_onnx(tap, example, names, staging / onnx_qat, axes)
    if projection is not None:
        project_features_output(str(staging / onnx_qat), projection)
    export_openvino(staging / onnx_qat, staging / openvino_qat)
    qat = {"source": "qat", "max_relative_deviation_vs_torch_qat": deviation}
    # NNCF's torch QAT keeps 8-bit weights: the scheme of VNNI-class hosts.
    scheme = QuantizationScheme().to_dict()
    return [
        ModelEntry(path, engine, "int8", details=qat, scheme=scheme, candidate=True)
        for path, engine in ((onnx_qat, "onnxruntime"), (openvino_qat, "openvino"))
    ]

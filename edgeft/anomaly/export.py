"""An anomaly run folder -> a bundle: the feature network as fp32 ONNX and OpenVINO IR, the
distance graph, the memory banks as hashed ``.npy`` files, and the scoring and threshold in
the manifest.

Before the bundle replaces anything, each engine scores the run's validation items as the box
will (``AnomalyDetector``) and is held to the fitted model: the same verdict on every item, and
defect maps within ``MAP_TOLERANCE`` (on the normalised 0..1 scale). A disagreement refuses the
export, naming how many items moved: an exported model that flags everything is not shipped.
The banks are stored in fp16 (half the size) when that check passes with them, else in fp32.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeft.anomaly.distance_graph import write_distance_graph
from edgeft.anomaly.features import PatchFeatures
from edgeft.anomaly.fit import (
    BANK,
    EMBEDDING_GROUPS,
    EMBEDDINGS,
    FEATURES,
    GAUSSIAN_MEAN,
    GAUSSIAN_PRECISION,
    SCORING,
    VALIDATION,
    VALIDATION_GRIDS,
    AnomalyRecipe,
)
from edgeft.bundle import (
    MODEL_FILES,
    Bundle,
    Manifest,
    ModelEntry,
    TensorSpec,
    preprocessing_from_dict,
    stage_bundle,
    write_manifest,
)
from edgeft.bundle.acceptance import DEFAULT_SIZE, load_acceptance_set, save_outputs
from edgeft.bundle.anomaly_spec import VERDICTS, AnomalySpec
from edgeft.bundle.manifest import ANOMALY_TASK, ImagePreprocessing
from edgeft.bundle.reference_statistics import ReferenceStatistics
from edgeft.data import stratified_split
from edgeft.errors import DatasetError, EdgeftError
from edgeft.export.acceptance import SEED, write_acceptance_set
from edgeft.export.model_inputs import model_inputs
from edgeft.export.onnx_export import export_onnx
from edgeft.export.openvino_export import export_openvino
from edgeft.runtime.anomaly.detector import (
    EMBEDDING,
    PATCHES,
    AnomalyDetector,
    AnomalyHead,
    AnomalyOutputs,
)
from edgeft.runtime.anomaly.maps import defect_maps
from edgeft.runtime.anomaly.scores import ImageDistances, normalise, normalise_map, raw_scores
from edgeft.runtime.encoders import ImageEncoder
from edgeft.runtime.engines import open_session
from edgeft.train.checkpoint import load_weights
from edgeft.train.run_folder import METRICS, RECIPE, RUN
from edgeft.zoo import rebuild

log = logging.getLogger("edgeft.export")

MAP_TOLERANCE = 0.01
BANK_DTYPES = {"fp16": np.float16, "fp32": np.float32}


def is_anomaly_run(source: str | Path) -> bool:
    run = Path(source) / RUN
    return run.is_file() and json.loads(run.read_text()).get("task") == ANOMALY_TASK


def _feature_network(run_dir: Path, run: dict[str, Any]) -> PatchFeatures:
    recipe = AnomalyRecipe(**json.loads((run_dir / RECIPE).read_text()))
    settings = recipe.settings(tuple(run["layers"]))
    entry = rebuild(run["architecture"], run_dir)
    network = PatchFeatures(
        entry.create(pretrained=False),
        settings.taps,
        settings.aggregate,
        settings.channels,
        settings.seed,
    )
    load_weights(network, run_dir / FEATURES)
    return network.eval()


def export_anomaly_bundle(
    source: str | Path,
    out: str | Path,
    overwrite: bool = False,
    acceptance_size: int = DEFAULT_SIZE,
) -> Bundle:
    """Export the anomaly run ``source`` to the bundle ``out``, checked on both engines; up to
    ``acceptance_size`` validation parts travel in it (0: none), with each model's scores on
    them, for ``edgeft validate`` on the box."""
    run_dir = Path(source)
    run = json.loads((run_dir / RUN).read_text())
    spec = AnomalySpec.from_dict(json.loads((run_dir / SCORING).read_text()))
    preprocessing = preprocessing_from_dict(run["preprocessing"])
    assert isinstance(preprocessing, ImagePreprocessing)
    network = _feature_network(run_dir, run)
    inputs = model_inputs(preprocessing, network)
    with torch.no_grad():
        patches, embedding = network(next(iter(inputs.example.values())))
    axes = {name: {0: "batch"} for name in (*inputs.example, PATCHES, EMBEDDING)}
    onnx_file, openvino_file = MODEL_FILES["onnxruntime"], MODEL_FILES["openvino"]
    with stage_bundle(out, overwrite=overwrite) as staging:
        deviation = export_onnx(
            network, inputs.example, [PATCHES, EMBEDDING], staging / onnx_file, axes
        )
        export_openvino(staging / onnx_file, staging / openvino_file)
        write_distance_graph(staging / spec.distance)
        manifest = Manifest(
            task=ANOMALY_TASK,
            labels=list(VERDICTS),
            preprocessing=preprocessing,
            inputs=inputs.specs,
            outputs=[
                TensorSpec(PATCHES, (-1, *patches.shape[1:]), "float32"),
                TensorSpec(EMBEDDING, (-1, int(embedding.shape[1])), "float32"),
            ],
            models=[
                ModelEntry(
                    onnx_file,
                    "onnxruntime",
                    "fp32",
                    details={"max_relative_deviation_vs_torch": deviation},
                ),
                ModelEntry(openvino_file, "openvino", "fp32"),
            ],
            provenance={
                "base_model": run["model"],
                "architecture": run["architecture"],
                "layers": run["layers"],
                "fine_tuned": False,
                "run": str(run_dir),
                "dataset": run["dataset"],
                "recipe": json.loads((run_dir / RECIPE).read_text()),
                "versions": {p: version(p) for p in ("edgeft", "torch", "onnx", "openvino")},
            },
            metrics={"validation": json.loads((run_dir / METRICS).read_text())},
            anomaly=spec,
        )
        fitted = json.loads((run_dir / VALIDATION).read_text())["items"]
        if acceptance_size > 0 and all(Path(i["path"]).is_file() for i in fitted):
            manifest.acceptance = _store_acceptance_set(
                staging, fitted, acceptance_size, preprocessing
            )
        staged, checked = _store_banks(staging, run_dir, manifest)
        manifest.models = [
            replace(
                m,
                details=m.details | ({"agreement_with_fit": checked[m.engine]} if checked else {}),
                reference_outputs=record_scores(staged, m),
            )
            for m in manifest.models
        ]
        if checked:  # the validation parts are readable: the monitor's reference
            manifest.reference = reference_statistics(staged, run_dir).write(staging)
        write_manifest(staging, manifest)
    return Bundle.load(out)


def _store_banks(
    staging: Path, run_dir: Path, manifest: Manifest
) -> tuple[Bundle, dict[str, dict[str, Any]]]:
    """The banks in fp16 where the bundle then passes ``agreement_with_fit``, else in fp32
    (also when the validation items cannot be read to prove it), the manifest naming which."""
    staged = _write_banks(staging, run_dir, manifest, "fp16")
    try:
        checked = agreement_with_fit(staged, run_dir)
        if checked:
            return staged, checked
    except EdgeftError as exc:
        log.info("banks stored in fp32: in fp16, %s", exc)
    staged = _write_banks(staging, run_dir, manifest, "fp32")
    return staged, agreement_with_fit(staged, run_dir)


def _write_banks(staging: Path, run_dir: Path, manifest: Manifest, precision: str) -> Bundle:
    assert manifest.anomaly is not None
    manifest.anomaly = spec = replace(manifest.anomaly, bank_precision=precision)
    arrays = [(BANK, spec.bank), (EMBEDDINGS, spec.embeddings)]
    if spec.gaussian_channels:
        arrays += [
            (GAUSSIAN_MEAN, spec.gaussian_mean),
            (GAUSSIAN_PRECISION, spec.gaussian_precision),
        ]
    for name, rel in arrays:
        array = np.load(run_dir / name, allow_pickle=False)
        np.save(staging / rel, array.astype(BANK_DTYPES[precision]), allow_pickle=False)
    if spec.groups:
        (staging / spec.embedding_groups).write_bytes((run_dir / EMBEDDING_GROUPS).read_bytes())
    write_manifest(staging, manifest)
    return Bundle.load(staging)


def _store_acceptance_set(
    staging: Path, fitted: list[dict[str, Any]], size: int, preprocessing: ImagePreprocessing
) -> str:
    """Validation parts, good and defective in their shares, stored in the bundle."""
    labels = ["defect" if item["defect"] else "good" for item in fitted]
    chosen = list(range(len(fitted)))
    if len(fitted) > size:
        share = size / len(fitted)
        try:
            chosen, _ = stratified_split(labels, (share, 1.0 - share), SEED)
        except DatasetError:  # one defective item: a plain seeded sample
            chosen = sorted(np.random.default_rng(SEED).permutation(len(fitted))[:size])
    source = {"dataset": "validation parts of the fit", "split": "val", "items": len(chosen)}
    return write_acceptance_set(
        staging, "image", [fitted[i]["path"] for i in chosen], [labels[i] for i in chosen],
        preprocessing, source,
    )  # fmt: skip


def reference_statistics(bundle: Bundle, run_dir: Path) -> ReferenceStatistics:
    """What ``edgeft monitor`` compares a line's log with: the validation parts' verdict
    probabilities (so the share flagged and the score's distribution), their defect flags and
    their input statistics, through the fp32 ONNX model as the box runs it."""
    fitted = json.loads((run_dir / VALIDATION).read_text())["items"]
    paths = [Path(item["path"]) for item in fitted]
    detector = AnomalyDetector(bundle, entry=bundle.manifest.model("onnxruntime", "fp32"))
    inputs = [detector.encoder.encode(paths[i : i + 16]) for i in range(0, len(paths), 16)]
    outputs = AnomalyOutputs.concatenate([detector.outputs(batch) for batch in inputs])
    statistics = [
        detector.encoder.statistics(batch, paths[i * 16 : (i + 1) * 16])
        for i, batch in enumerate(inputs)
    ]
    truth = np.array([int(bool(item["defect"])) for item in fitted], dtype=np.int64)
    flagged = outputs.scores > detector.threshold
    return ReferenceStatistics(
        temperature=1.0,
        labels=list(bundle.manifest.labels),
        truth=truth,
        probabilities=outputs.probabilities.astype(np.float64),
        statistics={k: np.concatenate([s[k] for s in statistics]) for k in statistics[0]},
        embedding=None,
        source={"dataset": "validation parts of the fit", "split": "val", "items": len(paths)},
        summary={
            "flagged": float(flagged.mean()),
            "false_reject": float(flagged[truth == 0].mean()) if (truth == 0).any() else None,
        },
    )


def record_scores(bundle: Bundle, entry: ModelEntry) -> str | None:
    """The model's raw scores on the acceptance set, ``[N, 1]``: what the box must reproduce
    (an int8 scheme that saturates on this host runs in exact arithmetic, as its target
    computes it)."""
    accepted = load_acceptance_set(bundle.root, bundle.manifest)
    if accepted is None:
        return None
    scheme = entry.int8_scheme
    exact = scheme is not None and scheme.saturates_on() is not None
    session = open_session(
        entry.engine, bundle.path_of(entry), precision=entry.precision, exact=exact
    )
    head = AnomalyHead(bundle, entry.engine, entry=entry)
    encoder = ImageEncoder(bundle.manifest.preprocessing, bundle.manifest.inputs[0].name)  # type: ignore[arg-type]
    items = accepted.inputs(bundle.root)
    raw = np.concatenate([
        head(*session.run(encoder.encode(items[i : i + 16]))[:2]).raw
        for i in range(0, len(items), 16)
    ])  # fmt: skip
    return save_outputs(bundle.root, entry.path, raw[:, None])


def agreement_with_fit(bundle: Bundle, run_dir: Path) -> dict[str, dict[str, Any]]:
    """Each fp32 model's verdicts and maps on the run's validation items against the fitted
    model's; refuses on any verdict that moved or a map beyond ``MAP_TOLERANCE``. Items that
    cannot be read any more (the data moved) leave the check out, with a warning."""
    fitted = json.loads((run_dir / VALIDATION).read_text())["items"]
    paths = [Path(item["path"]) for item in fitted]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        log.warning("exported without the agreement check: %s is gone", missing[0])
        return {}
    spec = bundle.manifest.anomaly
    assert spec is not None
    distances = ImageDistances(
        np.array([item["patch"] for item in fitted]),
        np.array([item["embedding"] for item in fitted]),
        np.array([item["gaussian"] for item in fitted]) if spec.gaussian_channels else None,
        np.array([item.get("group", 0) for item in fitted], dtype=np.int64),
    )
    expected_scores = normalise(spec, raw_scores(spec, distances))
    grids = np.load(run_dir / VALIDATION_GRIDS, allow_pickle=False)
    checked = {}
    for entry in bundle.manifest.models:
        detector = AnomalyDetector(bundle, entry=entry)
        outputs = detector.outputs_of(paths)
        scores, maps = outputs.scores, outputs.maps
        size = detector.map_size
        expected_maps = normalise_map(spec, defect_maps(grids, size, spec.map_sigma))
        moved = int(((scores > spec.threshold) != (expected_scores > spec.threshold)).sum())
        map_deviation = float(np.abs(maps - expected_maps).max())
        if moved or map_deviation > MAP_TOLERANCE:
            raise EdgeftError(
                f"{entry.label} disagrees with the fitted model on the validation items: "
                f"{moved} of {len(paths)} verdicts moved, maps differ by up to "
                f"{map_deviation:.4f} (tolerance {MAP_TOLERANCE}); nothing was written"
            )
        checked[entry.engine] = {
            "items": len(paths),
            "verdicts_agree": 1.0,
            "max_score_deviation": float(np.abs(scores - expected_scores).max()),
            "max_map_deviation": map_deviation,
        }
    return checked

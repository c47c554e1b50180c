"""``edgeft validate``: every model this box can run, scored on the bundle's acceptance set (or a
labelled folder) through this box's engines, and each int8 model held to the bundle's budget here.

Torch-free, so it runs on the box itself. For each model: accuracy with a bootstrap 95%
interval, macro-F1, per-class recall and the confusion matrix; for int8, top-1 agreement with the
same engine's fp32 model on this box and the paired drop against it; on the acceptance set, the
agreement with the outputs recorded at build time and the change in accuracy since. An int8 model fails when its paired drop against fp32 on this box is
over the bundle's budget and worse than the drop recorded at build time on the same items (the
acceptance set is a sample, so its build-time drop may itself sit over the budget).

The result is written beside the bundle (``<bundle>.validation.json``, atomically): the bundle
stays immutable and hash-checked, and the record names the manifest's sha256 it was made for.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeft.atomic import write_text_atomically
from edgeft.bundle import Bundle, ModelEntry
from edgeft.bundle.acceptance import load_acceptance_set, load_outputs
from edgeft.errors import EdgeftError
from edgeft.runtime.budget_metrics import accuracy_interval, drop_points, paired_drop
from edgeft.runtime.classification_metrics import classification_metrics
from edgeft.runtime.scoring import EncodedSplit, encode_items, entry_logits
from edgeft.runtime.validation_report import (
    LabelledItems,
    ModelValidation,
    ValidationReport,
    new_report,
    runnable_models,
)
from edgeft.targets import Host, this_host


def validate_bundle(
    bundle: Bundle,
    data: LabelledItems | None = None,
    host: Host | None = None,
    models: Sequence[ModelEntry] | None = None,
) -> ValidationReport:
    """Score ``models`` on the acceptance set or on ``data`` (labelled items). By default every model this host can run; models named in ``models`` are scored
    even when their int8 scheme does not fit this host (a forced choice is checked too)."""
    host = host or this_host()
    manifest = bundle.manifest
    runnable, skipped = runnable_models(manifest, host, models)
    if manifest.anomaly is not None:
        from edgeft.runtime.anomaly.validation import anomaly_validations

        source, count, results = anomaly_validations(bundle, runnable, data)
        return new_report(bundle, host, source, count, skipped, results)
    encoded, source, on_acceptance = _validation_data(bundle, data)
    report = new_report(bundle, host, source, len(encoded), skipped)
    fp32_of = {m.engine: m for m in manifest.models if m.precision == "fp32"}
    wanted = {m.path: m for m in runnable} | {
        fp32_of[m.engine].path: fp32_of[m.engine] for m in runnable if m.engine in fp32_of
    }
    logits = {path: entry_logits(bundle, m, encoded) for path, m in wanted.items()}
    recorded = {
        path: load_outputs(bundle.root, m, len(encoded)) if on_acceptance else None
        for path, m in wanted.items()
    }
    labels = encoded.labels
    assert labels is not None
    for entry in runnable:
        predicted = logits[entry.path].argmax(axis=1)
        result = ModelValidation(
            model=entry.label,
            engine=entry.engine,
            precision=entry.precision,
            scheme=entry.int8_scheme.key if entry.int8_scheme else None,
            scores=_scores(labels, predicted, manifest.labels),
        )
        before = recorded[entry.path]
        if before is not None:
            built_accuracy = float((before.argmax(axis=1) == labels).mean())
            result.recorded = {
                "accuracy": built_accuracy,
                "accuracy_change_points": round(
                    100.0 * (result.scores["accuracy"] - built_accuracy), 3
                ),
                "agreement_with_recorded": float((before.argmax(axis=1) == predicted).mean()),
                "max_abs_logit_difference": float(np.abs(before - logits[entry.path]).max()),
            }
        fp32 = fp32_of.get(entry.engine)
        if entry.precision == "int8" and fp32 is not None:
            references = (logits[fp32.path], recorded[entry.path], recorded[fp32.path])
            _hold_to_budget(result, entry, labels, manifest.labels, logits[entry.path], references)
        report.models.append(result)
    return report


def _hold_to_budget(
    result: ModelValidation,
    entry: ModelEntry,
    labels: np.ndarray,
    classes: list[str],
    logits: np.ndarray,
    references: tuple[np.ndarray, np.ndarray | None, np.ndarray | None],
) -> None:
    """The paired drop against fp32 here, against the bundle's budget; a bundle quantized
    without labels holds top-1 agreement with fp32 (its drop is the disagreement)."""
    fp32_logits, built_int8, built_fp32 = references
    reference, predicted = fp32_logits.argmax(axis=1), logits.argmax(axis=1)
    result.agreement_with_fp32 = float((reference == predicted).mean())
    details = entry.int8
    assert details is not None  # held to the budget: an int8 model
    metric, budget = details.budget_metric, details.max_accuracy_drop
    result.budget_metric, result.budget_points = metric, budget

    # against agreement, fp32's own answers are the truth: the drop is the disagreement
    scored = "accuracy" if metric == "agreement" else metric

    def truth(fp32: np.ndarray) -> np.ndarray:
        return fp32 if metric == "agreement" else labels

    result.drop = paired_drop(truth(reference), reference, predicted, classes, scored)
    if budget is None or result.drop["drop"] <= budget:
        return
    built = None
    if built_int8 is not None and built_fp32 is not None:
        before = built_fp32.argmax(1)
        built = round(drop_points(truth(before), before, built_int8.argmax(1), classes, scored), 3)
        result.recorded = (result.recorded or {}) | {"drop_points": built}
    if built is not None and result.drop["drop"] <= built:
        return  # over budget on this sample, but no worse than when it was accepted
    result.passed = False
    result.reason = (
        f"{metric} drops {result.drop['drop']:.2f} points against fp32 on this host "
        f"(95% interval {result.drop['low']:.2f} to {result.drop['high']:.2f}), over the "
        f"{budget:.2f}-point budget"
        + (f" and worse than the {built:.2f} recorded at build time" if built is not None else "")
    )


def _scores(labels: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict[str, Any]:
    metrics = classification_metrics(labels, predicted, classes)
    low, high = accuracy_interval(labels == predicted)
    return {
        "accuracy": metrics["accuracy"],
        "accuracy_interval": [round(float(low), 4), round(float(high), 4)],
        "macro_f1": metrics["macro_f1"],
        "recall": {name: row["recall"] for name, row in metrics["per_class"].items()},
        "confusion_matrix": metrics["confusion_matrix"],
    }


def _validation_data(bundle: Bundle, data: LabelledItems | None) -> tuple[EncodedSplit, str, bool]:
    """The encoded items, what they are, and whether they are the bundle's acceptance set."""
    manifest = bundle.manifest
    if data is None:
        accepted = load_acceptance_set(bundle.root, manifest)
        if accepted is None:
            raise EdgeftError(
                f"{bundle.root} carries no acceptance set (exported without labelled data): "
                "validate it with `edgeft validate BUNDLE --data LABELLED_FOLDER`"
            )
        items = accepted.inputs(bundle.root)
        encoded = encode_items(bundle, items, accepted.label_indices(manifest.labels))
        return encoded, "acceptance set", True
    unknown = sorted(set(data.labels) - set(manifest.labels))
    if unknown:
        raise EdgeftError(
            f"{data.source}: labels {', '.join(unknown)} are not the bundle's "
            f"({', '.join(manifest.labels)})"
        )
    index = {name: i for i, name in enumerate(manifest.labels)}
    encoded = encode_items(bundle, data.items, [index[n] for n in data.labels])
    return encoded, data.source, False


def validation_record_path(bundle_root: Path) -> Path:
    """Beside the bundle folder, not in it: the bundle's own files stay as hashed."""
    root = bundle_root.resolve()
    return root.with_name(f"{root.name}.validation.json")


def write_validation_record(report: ValidationReport, path: Path | None = None) -> Path:
    """Add this host's result to the record (one entry per host and manifest), atomically."""
    path = path or validation_record_path(Path(report.bundle))
    records: list[dict[str, Any]] = []
    if path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            records = [r for r in loaded.get("records", []) if isinstance(r, dict)]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            records = []  # a damaged record is rebuilt, never trusted
    mine = report.to_dict()
    records = [
        r
        for r in records
        if not (
            r.get("host", {}).get("cpu") == mine["host"]["cpu"]
            and r.get("manifest_sha256") == mine["manifest_sha256"]
            and r.get("data") == mine["data"]
        )
    ]
    text = json.dumps({"records": [*records, mine]}, indent=2) + "\n"
    write_text_atomically(path, text)
    return path


def validate_and_record(
    bundle: str | Path, data: LabelledItems | None = None, record: Path | None = None
) -> tuple[ValidationReport, Path]:
    """``edgeft validate``: validate the bundle on this host and add the result to its record
    (default: beside the bundle); the report and where it was recorded."""
    report = validate_bundle(Bundle.load(bundle), data)
    return report, write_validation_record(report, record)

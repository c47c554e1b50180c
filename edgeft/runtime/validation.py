"""``edgeft validate``: every model this box can run, scored on the bundle's acceptance set (or a
labelled folder) through this box's engines, and each int8 model held to the bundle's budget here.

Torch-free, so it runs on the box itself. For each model: accuracy, macro-F1 and per-class
recall with a bootstrap 95% interval, top-1 agreement with the same engine's fp32 model on this
box, and, on the acceptance set, the agreement with the outputs recorded at build time and the
change in accuracy since. An int8 model fails when its paired drop against fp32 on this box is
over the bundle's budget and worse than the drop recorded at build time on the same items (the
acceptance set is a sample, so its build-time drop may itself sit over the budget).

The result is written beside the bundle (``<bundle>.validation.json``, atomically): the bundle
stays immutable and hash-checked, and the record names the manifest's sha256 it was made for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edgeft.atomic import write_text_atomically
from edgeft.bundle import MANIFEST_NAME, Bundle, ModelEntry
from edgeft.bundle.acceptance import load_acceptance_set, load_outputs
from edgeft.errors import EdgeftError
from edgeft.runtime.budget_metrics import paired_drop
from edgeft.runtime.metrics import classification_metrics
from edgeft.runtime.model_choice import engine_installed, int8_mismatch
from edgeft.runtime.scoring import EncodedSplit, encode_items, entry_logits
from edgeft.targets import Host, host_fingerprint, this_host

RESAMPLES = 2000


@dataclass
class ModelValidation:
    """One model on this box: its scores, and (int8) its drop against fp32 and the verdict."""

    model: str
    engine: str
    precision: str
    scheme: str | None
    scores: dict[str, Any]
    agreement_with_fp32: float | None = None
    drop: dict[str, float] | None = None  # paired drop against fp32 here, with its interval
    recorded: dict[str, Any] | None = None  # build time on the same items
    budget_points: float | None = None
    budget_metric: str | None = None
    passed: bool = True
    reason: str | None = None


@dataclass
class ValidationReport:
    bundle: str
    manifest_sha256: str
    data: str
    items: int
    host: dict[str, Any]
    created: str
    models: list[ModelValidation] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(m.passed for m in self.models)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}

    def failures(self) -> list[str]:
        return [f"{m.model}: {m.reason}" for m in self.models if not m.passed]


def validate_bundle(
    bundle: Bundle,
    data: str | Path | None = None,
    host: Host | None = None,
    models: Sequence[ModelEntry] | None = None,
) -> ValidationReport:
    """Score ``models`` (default: every model this host can run) on the acceptance set or on
    ``data`` (a labelled image folder or text table)."""
    host = host or this_host()
    manifest = bundle.manifest
    encoded, source, on_acceptance = _validation_data(bundle, data)
    report = ValidationReport(
        bundle=str(bundle.root),
        manifest_sha256=hashlib.sha256((bundle.root / MANIFEST_NAME).read_bytes()).hexdigest(),
        data=source,
        items=len(encoded),
        host=host_fingerprint(host),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    chosen = list(models) if models is not None else list(manifest.models)
    runnable = []
    for entry in chosen:
        why = _why_not_here(entry, host)
        if why:
            report.skipped.append({"model": entry.label, "reason": why})
        else:
            runnable.append(entry)
    fp32_of = {m.engine: m for m in manifest.models if m.precision == "fp32"}
    wanted = {id(m): m for m in runnable} | {
        id(fp32_of[m.engine]): fp32_of[m.engine] for m in runnable if m.engine in fp32_of
    }
    logits = {key: entry_logits(bundle, m, encoded) for key, m in wanted.items()}
    labels = encoded.labels
    assert labels is not None
    for entry in runnable:
        predicted = logits[id(entry)].argmax(axis=1)
        result = ModelValidation(
            model=entry.label,
            engine=entry.engine,
            precision=entry.precision,
            scheme=entry.int8_scheme.key if entry.int8_scheme else None,
            scores=_scores(labels, predicted, manifest.labels),
        )
        recorded = load_outputs(bundle.root, entry, len(encoded)) if on_acceptance else None
        if recorded is not None:
            before = recorded.argmax(axis=1)
            result.recorded = {
                "accuracy": float((before == labels).mean()),
                "accuracy_change_points": round(
                    100.0 * (result.scores["accuracy"] - float((before == labels).mean())), 3
                ),
                "agreement_with_recorded": float((before == predicted).mean()),
                "max_abs_logit_difference": float(np.abs(recorded - logits[id(entry)]).max()),
            }
        fp32 = fp32_of.get(entry.engine)
        if entry.precision == "int8" and fp32 is not None:
            _hold_to_budget(result, entry, fp32, bundle, logits, labels, on_acceptance, encoded)
        report.models.append(result)
    return report


def _hold_to_budget(
    result: ModelValidation,
    entry: ModelEntry,
    fp32: ModelEntry,
    bundle: Bundle,
    logits: dict[int, np.ndarray],
    labels: np.ndarray,
    on_acceptance: bool,
    encoded: EncodedSplit,
) -> None:
    classes = bundle.manifest.labels
    reference = logits[id(fp32)].argmax(axis=1)
    predicted = logits[id(entry)].argmax(axis=1)
    result.agreement_with_fp32 = float((reference == predicted).mean())
    metric = str(entry.details.get("budget_metric", "accuracy"))
    metric = "accuracy" if metric == "agreement" else metric
    budget = entry.details.get("max_accuracy_drop")
    result.budget_metric, result.budget_points = metric, budget
    result.drop = paired_drop(labels, reference, predicted, classes, metric, RESAMPLES)
    if budget is None or result.drop["drop"] <= budget:
        return
    built = None
    if on_acceptance:
        before = load_outputs(bundle.root, entry, len(encoded))
        before_fp32 = load_outputs(bundle.root, fp32, len(encoded))
        if before is not None and before_fp32 is not None:
            built = paired_drop(
                labels, before_fp32.argmax(1), before.argmax(1), classes, metric, resamples=1
            )["drop"]
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
    rng = np.random.default_rng(0)
    draws = rng.integers(0, len(labels), size=(RESAMPLES, len(labels)))
    hits = (labels == predicted).astype(np.float64)[draws].mean(axis=1)
    low, high = np.percentile(hits, [2.5, 97.5])
    return {
        "accuracy": metrics["accuracy"],
        "accuracy_interval": [round(float(low), 4), round(float(high), 4)],
        "macro_f1": metrics["macro_f1"],
        "recall": {name: row["recall"] for name, row in metrics["per_class"].items()},
        "confusion_matrix": metrics["confusion_matrix"],
    }


def _why_not_here(entry: ModelEntry, host: Host) -> str | None:
    if not engine_installed(entry.engine):
        return f"{entry.engine} is not installed here"
    if entry.precision == "int8":
        return int8_mismatch(entry, host)
    return None


def _validation_data(bundle: Bundle, data: str | Path | None) -> tuple[EncodedSplit, str, bool]:
    """The encoded items, what they are, and whether they are the bundle's acceptance set."""
    manifest = bundle.manifest
    if data is None:
        accepted = load_acceptance_set(bundle.root, manifest)
        if accepted is None:
            raise EdgeftError(
                f"{bundle.root} carries no acceptance set (exported without labelled data); "
                "pass --data with a labelled folder"
            )
        items = accepted.inputs(bundle.root)
        encoded = encode_items(bundle, items, accepted.label_indices(manifest.labels))
        return encoded, "acceptance set", True
    from edgeft.data import SPLITS, load_dataset  # plain file readers, no build stack

    dataset = load_dataset(data)
    unknown = sorted(set(dataset.classes) - set(manifest.labels))
    if unknown:
        raise EdgeftError(
            f"{data}: labels {', '.join(unknown)} are not the bundle's "
            f"({', '.join(manifest.labels)})"
        )
    examples = [e for split in SPLITS for e in dataset.splits[split]]
    index = {name: i for i, name in enumerate(manifest.labels)}
    labels = [index[dataset.classes[e.label]] for e in examples]
    return encode_items(bundle, [e.item for e in examples], labels), str(data), False


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

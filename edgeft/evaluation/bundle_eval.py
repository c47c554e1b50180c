"""``edgeft eval``: every model of a bundle scored on a dataset split through the runtime."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import Progress

from edgeft.bundle import Bundle, ModelEntry
from edgeft.data import SPLITS, ClassificationDataset, load_dataset
from edgeft.errors import EdgeftError
from edgeft.evaluation.encoded_splits import encode_split
from edgeft.evaluation.slices import dataset_slices, slice_accuracy
from edgeft.runtime.scoring import entry_logits, score_logits


@dataclass
class ModelScores:
    """One model's scores; ``agreement`` is top-1 agreement with the same engine's fp32 model."""

    entry: ModelEntry
    size_bytes: int
    scores: dict[str, Any]

    def row(self) -> dict[str, Any]:
        return {
            "engine": self.entry.engine,
            "precision": self.entry.precision,
            "path": self.entry.path,
            "size_bytes": self.size_bytes,
        } | self.scores


def recorded_dataset(bundle: Bundle, data: str | None) -> ClassificationDataset | None:
    """The labelled data to validate on: ``data``, else the dataset recorded at training."""
    return dataset_from_provenance(bundle.manifest.provenance, data)


def dataset_from_provenance(
    provenance: dict[str, Any], data: str | None = None
) -> ClassificationDataset | None:
    """``data``, else the dataset a run or bundle records, split as it was (checked by the
    validation split's fingerprint)."""
    recorded = provenance.get("dataset") or {}
    source = data or recorded.get("source")
    if source is None:
        return None
    seed = int((recorded.get("split_recipe") or {}).get("seed", 0))
    dataset = load_dataset(source, seed=seed)
    expected = (recorded.get("fingerprints") or {}).get("val")
    if data is None and expected and dataset.fingerprint("val") != expected:
        raise EdgeftError(
            f"{source}: the validation split differs from the one the bundle was trained with "
            "(its fingerprint changed); pass --data explicitly"
        )
    return dataset


def per_class_deltas(fp32: dict[str, Any], other: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per class, ``other`` minus fp32 recall and F1 in points: where the int8 model loses."""
    return {
        name: {
            metric: round(100.0 * (other["per_class"][name][metric] - row[metric]), 2)
            for metric in ("recall", "f1")
        }
        for name, row in fp32.get("per_class", {}).items()
    }


def evaluate_bundle(
    bundle: Bundle,
    dataset: ClassificationDataset,
    split: str = "test",
    precision: str = "all",
    progress: Progress | None = None,
) -> list[ModelScores]:
    """Scores for the bundle's models of ``precision`` (fp32, int8 or all) on ``split``, with
    accuracy per slice where the dataset folder has a ``metadata.csv``."""
    if precision not in ("fp32", "int8", "all"):
        raise EdgeftError(f"--model must be fp32, int8 or all, not {precision!r}")
    chosen = [m for m in bundle.manifest.models if precision in ("all", m.precision)]
    if not chosen:
        raise EdgeftError(f"{bundle.root} has no {precision} model")
    data = encode_split(bundle, dataset, split, progress)
    logits = {m.path: entry_logits(bundle, m, data) for m in chosen}
    slices = dataset_slices(dataset, split) if data.labels is not None else {}
    results = []
    for entry in chosen:
        fp32 = _fp32_of(bundle, entry) if entry.precision == "int8" else None
        if fp32 is None:
            scores = score_logits(logits[entry.path], data)
        else:
            reference = logits.get(fp32.path)
            if reference is None:
                reference = logits[fp32.path] = entry_logits(bundle, fp32, data)
            reference_scores = score_logits(reference, data)
            scores = score_logits(logits[entry.path], data, reference)
            scores["accuracy_delta_points"] = round(
                100.0 * (scores["accuracy"] - reference_scores["accuracy"]), 3
            )
            scores["per_class_delta_points"] = per_class_deltas(reference_scores, scores)
        if slices:
            assert data.labels is not None
            scores["slices"] = slice_accuracy(logits[entry.path], data.labels, slices)
        results.append(ModelScores(entry, bundle.size_of(entry), scores))
    return results


@dataclass
class BundleEvaluation:
    """``edgeft eval``'s result: each chosen model's scores on one split of ``dataset``."""

    bundle: Bundle
    dataset: ClassificationDataset
    split: str
    results: list[ModelScores]


def evaluate_recorded(
    bundle_path: str | Path,
    data: str | None = None,
    split: str = "test",
    precision: str = "all",
    progress: Progress | None = None,
) -> BundleEvaluation:
    """Score the bundle's models on ``split`` of ``data``, else of the dataset it records."""
    if split not in SPLITS:
        raise EdgeftError(f"--split must be one of {', '.join(SPLITS)}")
    bundle = Bundle.load(bundle_path)
    dataset = recorded_dataset(bundle, data)
    if dataset is None:
        raise EdgeftError(f"{bundle_path} records no dataset; pass --data")
    return BundleEvaluation(
        bundle, dataset, split, evaluate_bundle(bundle, dataset, split, precision, progress)
    )


def _fp32_of(bundle: Bundle, entry: ModelEntry) -> ModelEntry | None:
    return next(
        (m for m in bundle.manifest.models if m.engine == entry.engine and m.precision == "fp32"),
        None,
    )

"""The monitoring reference, made at export from the validation split through the runtime.

The staged ONNX graph (outputs: logits and the pooled features) runs on the items as the box
would run them. The sketch's projection is fitted on training items: fitted on the validation
items themselves, their reconstruction error would be in-sample, lower than any production
window's. The validation items then give the profile: the logits the calibrating temperature,
the sketches and the encoded inputs' statistics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeft.bundle import Bundle, Manifest
from edgeft.bundle.reference_statistics import ReferenceStatistics
from edgeft.data import ClassificationDataset, Example
from edgeft.export.embedding_sketch import SketchProjection
from edgeft.monitor.temperature_scaling import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
)
from edgeft.runtime.encoders import encoder_for
from edgeft.runtime.engines import open_session
from edgeft.runtime.input_statistics import Statistics
from edgeft.runtime.scoring import BATCH

MAX_ITEMS = 3000  # enough windows to learn bands from; the profile stays a few MB
SEED = 0


def build_reference_statistics(
    staging: Path, manifest: Manifest, onnx_file: str, dataset: ClassificationDataset
) -> tuple[ReferenceStatistics, SketchProjection]:
    """The profile of the validation split, the projection fitted on the training split (each
    at most ``MAX_ITEMS``, a seeded sample)."""
    staged = Bundle(root=staging, manifest=manifest)  # not yet hashed: read, never verified
    runner = _GraphRunner(staged, staging / onnx_file)
    projection = SketchProjection.fit(runner.run(_sample(dataset.splits["train"]))[1])
    examples = _sample(dataset.splits["val"])
    all_logits, all_features, statistics = runner.run(examples)
    index = {name: i for i, name in enumerate(manifest.labels)}
    truth = np.array([index[dataset.classes[e.label]] for e in examples], dtype=np.int64)
    temperature = fit_temperature(all_logits, truth)
    calibrated = apply_temperature(all_logits, temperature)
    raw = apply_temperature(all_logits, 1.0)
    profile = ReferenceStatistics(
        temperature=temperature,
        labels=list(manifest.labels),
        truth=truth,
        probabilities=calibrated,
        statistics=statistics,
        embedding=projection(all_features).astype(np.float64),
        source={
            "dataset": dataset.source,
            "split": "val",
            "val_fingerprint": dataset.fingerprint("val"),
            "items": len(examples),
        },
        summary={
            "accuracy": float((calibrated.argmax(axis=1) == truth).mean()),
            "expected_calibration_error": {
                "before": expected_calibration_error(raw, truth),
                "after": expected_calibration_error(calibrated, truth),
            },
        },
    )
    return profile, projection


def _sample(examples: list[Example]) -> list[Example]:
    if len(examples) <= MAX_ITEMS:
        return examples
    keep = np.random.default_rng(SEED).permutation(len(examples))[:MAX_ITEMS]
    return [examples[i] for i in sorted(keep)]


class _GraphRunner:
    """The staged graph on examples, through the bundle's own encoder."""

    def __init__(self, staged: Bundle, graph: Path) -> None:
        self.encoder = encoder_for(staged)
        self.session = open_session("onnxruntime", graph)

    def run(self, examples: list[Example]) -> tuple[np.ndarray, np.ndarray, Statistics]:
        """Logits, pooled features and input statistics of ``examples``."""
        logits, features, statistics = [], [], []
        for start in range(0, len(examples), BATCH):
            items = [e.item for e in examples[start : start + BATCH]]
            inputs = self.encoder.encode(items)
            batch_logits, batch_features = self.session.run(inputs)[:2]
            logits.append(batch_logits)
            features.append(batch_features)
            statistics.append(self.encoder.statistics(inputs, items))
        merged = {name: np.concatenate([s[name] for s in statistics]) for name in statistics[0]}
        return np.concatenate(logits).astype(np.float64), np.concatenate(features), merged

"""The monitoring reference, made at export from the validation split through the runtime.

The staged ONNX graph (outputs: logits and the pooled features) runs on the validation items as
the box would run them; the features give the sketch's projection, the logits the calibrating
temperature, the encoded inputs their statistics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeft.bundle import Bundle, Manifest
from edgeft.data import ClassificationDataset
from edgeft.export.embedding_sketch import SketchProjection
from edgeft.monitor.calibration import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
)
from edgeft.monitor.profile import ReferenceProfile
from edgeft.runtime.encoders import encoder_for
from edgeft.runtime.engines import open_session
from edgeft.runtime.scoring import BATCH

MAX_ITEMS = 3000  # enough windows to learn bands from; the profile stays a few MB
SEED = 0


def build_reference_profile(
    staging: Path, manifest: Manifest, onnx_file: str, dataset: ClassificationDataset
) -> tuple[ReferenceProfile, SketchProjection]:
    """The profile of the validation split (at most ``MAX_ITEMS``, a seeded sample), and the
    projection of the graph's features onto the sketch."""
    examples = dataset.splits["val"]
    if len(examples) > MAX_ITEMS:
        keep = np.random.default_rng(SEED).permutation(len(examples))[:MAX_ITEMS]
        examples = [examples[i] for i in sorted(keep)]
    staged = Bundle(root=staging, manifest=manifest)  # not yet hashed: read, never verified
    encoder = encoder_for(staged)
    session = open_session("onnxruntime", staging / onnx_file)
    logits, features, statistics = [], [], []
    for start in range(0, len(examples), BATCH):
        items = [e.item for e in examples[start : start + BATCH]]
        inputs = encoder.encode(items)
        batch_logits, batch_features = session.run(inputs)[:2]
        logits.append(batch_logits)
        features.append(batch_features)
        statistics.append(encoder.statistics(inputs, items))
    index = {name: i for i, name in enumerate(manifest.labels)}
    truth = np.array([index[dataset.classes[e.label]] for e in examples], dtype=np.int64)
    all_logits = np.concatenate(logits).astype(np.float64)
    all_features = np.concatenate(features)
    projection = SketchProjection.fit(all_features)
    temperature = fit_temperature(all_logits, truth)
    calibrated = apply_temperature(all_logits, temperature)
    raw = apply_temperature(all_logits, 1.0)
    profile = ReferenceProfile(
        temperature=temperature,
        labels=list(manifest.labels),
        truth=truth,
        probabilities=calibrated,
        statistics={name: np.concatenate([s[name] for s in statistics]) for name in statistics[0]},
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

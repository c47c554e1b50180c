"""Choosing and storing a bundle's acceptance set, and recording each model's outputs on it.

The set is a stratified sample of the validation split (the test split stays untouched), so
the box can score its models on labelled items without the dataset.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from edgeft.bundle import Bundle, Manifest, Preprocessing
from edgeft.bundle.acceptance import read_acceptance_set, save_outputs, write_acceptance_set
from edgeft.data import ClassificationDataset, stratified_split
from edgeft.errors import DatasetError
from edgeft.runtime.scoring import encode_items, entry_logits

SEED = 0


def store_acceptance_set(
    staging: Path, dataset: ClassificationDataset, preprocessing: Preprocessing, size: int
) -> str:
    """Write about ``size`` validation items, stratified by class (at least one of each, so a
    dataset with more classes than ``size`` gets one per class), into ``staging``."""
    examples = dataset.splits["val"]
    if len(examples) > size:
        share = size / len(examples)
        try:
            chosen, _ = stratified_split([e.label for e in examples], (share, 1.0 - share), SEED)
        except DatasetError:  # a class with a single validation item: a plain seeded sample
            chosen = sorted(np.random.default_rng(SEED).permutation(len(examples))[:size])
        examples = [examples[i] for i in chosen]
    source = {
        "dataset": dataset.source,
        "split": "val",
        "val_fingerprint": dataset.fingerprint("val"),
        "items": len(examples),
    }
    return write_acceptance_set(
        staging,
        dataset.kind,
        [e.item for e in examples],
        [dataset.classes[e.label] for e in examples],
        preprocessing,
        source,
    )


def record_outputs(staging: Path, manifest: Manifest) -> Manifest:
    """The staged manifest with each model's logits on the acceptance set (through the runtime,
    as the box runs it) saved beside it; models that have them already keep theirs."""
    if manifest.acceptance is None:
        return manifest
    accepted = read_acceptance_set(staging / manifest.acceptance)
    staged = Bundle(root=staging, manifest=manifest)  # not yet hashed: read, never verified
    data = encode_items(staged, accepted.inputs(staging))
    models = [
        m
        if m.reference_outputs
        else replace(
            m, reference_outputs=save_outputs(staging, m.path, entry_logits(staged, m, data))
        )
        for m in manifest.models
    ]
    return replace(manifest, models=models)

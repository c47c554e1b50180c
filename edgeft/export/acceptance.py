"""Choosing and storing a bundle's acceptance set, and recording each model's outputs on it.

The set is a stratified sample of the validation split (the test split stays untouched), so
the box can score its models on labelled items without the dataset.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgeft.bundle import Bundle, ImagePreprocessing, Manifest, Preprocessing
from edgeft.bundle.acceptance import (
    ACCEPTANCE_DIR,
    ACCEPTANCE_INDEX,
    read_acceptance_set,
    save_outputs,
)
from edgeft.data import ClassificationDataset, stratified_split
from edgeft.errors import DatasetError
from edgeft.runtime.images import decode_pixels
from edgeft.runtime.preprocess import ImagePreprocessor
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


def write_acceptance_set(
    staging: Path,
    kind: str,
    items: list[str],
    labels: list[str],
    preprocessing: Any,
    source: dict[str, Any],
) -> str:
    """Store ``items`` (image paths or texts) under ``staging/acceptance``; returns the index path."""
    (staging / ACCEPTANCE_DIR / "images").mkdir(parents=True, exist_ok=True)
    stored = list(items)
    if kind == "image":
        assert isinstance(preprocessing, ImagePreprocessing)
        resize = ImagePreprocessor(preprocessing).resize_only
        stored = [f"{ACCEPTANCE_DIR}/images/{i:04d}.png" for i in range(len(items))]
        for item, rel in zip(items, stored, strict=True):
            image = resize(decode_pixels(item))  # grey sources stay "L"
            pixels = np.asarray(image)
            if pixels.ndim == 3 and (pixels == pixels[..., :1]).all():  # grey saved as RGB
                image = Image.fromarray(pixels[..., 0])
            image.save(staging / rel, optimize=True)
    index = {"kind": kind, "items": stored, "labels": labels, "source": source}
    (staging / ACCEPTANCE_INDEX).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    return ACCEPTANCE_INDEX

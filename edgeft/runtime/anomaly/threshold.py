"""Moving an anomaly bundle's threshold without re-exporting: a new bundle version with the
same files and a new threshold in its manifest (``edgeft threshold``). Runs on the box: numpy
and the engine only, so the line's own good parts can set it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeft.bundle import Bundle, copy_bundle_files, stage_bundle, write_manifest
from edgeft.bundle.anomaly_spec import check_threshold
from edgeft.errors import EdgeftError
from edgeft.runtime.anomaly.scores import normalise
from edgeft.runtime.images import IMAGE_SUFFIXES


def threshold_at_false_reject(good: np.ndarray, rate: float) -> float:
    """The cut with at most ``rate`` of the good items above it, midway between two items'
    scores so that float noise in another engine's score cannot move an item across it."""
    if not 0 <= rate < 1:
        raise EdgeftError(f"false-reject rate {rate}: give a share from 0 up to 1")
    if len(good) == 0:
        raise EdgeftError("no good parts to set a false-reject rate on")
    ranked = np.sort(np.asarray(good, dtype=np.float64))[::-1]
    kept = ranked[int(np.floor(rate * len(ranked))) :]  # the good items that stay below
    above = ranked[ranked > kept[0]]
    if len(above):
        return float((kept[0] + above[-1]) / 2)
    margin = (ranked[0] - ranked[-1]) * 0.05 or max(abs(ranked[0]), 1.0) * 1e-3
    return float(kept[0] + margin)


def good_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise EdgeftError(f"{folder}: no such folder of good parts")
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise EdgeftError(f"{folder}: no images of good parts in it")
    return images


def rethreshold_bundle(
    bundle: str | Path | Bundle,
    out: str | Path,
    value: float | None = None,
    false_reject: float | None = None,
    good: str | Path | None = None,
    overwrite: bool = False,
) -> Bundle:
    """``bundle`` with its threshold set to ``value`` (on the 0..1 score), or to the cut that
    flags ``false_reject`` of the good parts in the folder ``good`` (scored here, by the model
    this host runs), written as the new bundle ``out``."""
    from edgeft.runtime.anomaly.detector import AnomalyDetector

    source = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    spec = source.manifest.anomaly
    if spec is None:
        raise EdgeftError(f"{source.root}: not an anomaly bundle; only those have a threshold")
    if (value is None) == (false_reject is None):
        raise EdgeftError("give the new threshold as --value or as --false-reject (with --good)")
    rule: dict[str, Any]
    if value is not None:
        threshold = check_threshold(value)
        rule = {"rule": "set", "value": value}
    else:
        assert false_reject is not None
        if good is None:
            raise EdgeftError("--false-reject needs --good: a folder of good parts to count on")
        images = good_images(Path(good))
        detector = AnomalyDetector(source)
        # cut on the raw scores: the normalised ones saturate near 1 for far-out parts
        raw = detector.outputs_of(images).raw
        cut = threshold_at_false_reject(raw, false_reject)
        threshold = check_threshold(float(normalise(spec, np.array([cut]))[0]))
        rule = {
            "rule": "false-reject",
            "rate": false_reject,
            "good_parts": len(images),
            "model": detector.model.label,
        }
    rule["previous"] = {"threshold": spec.threshold, **spec.threshold_rule}
    rule["from_bundle"] = source.fingerprint
    manifest = replace(source.manifest, anomaly=spec.with_threshold(threshold, rule))
    with stage_bundle(out, overwrite=overwrite) as staging:
        copy_bundle_files(source, staging, keep=list(manifest.models))
        write_manifest(staging, manifest)
    return Bundle.load(out)

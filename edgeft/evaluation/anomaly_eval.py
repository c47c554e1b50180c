"""``edgeft eval`` for an anomaly bundle: every model run as the box runs it on a split of the
inspection folder, scored as MVTec AD reports it (image AUROC; pixel AUROC and PRO where masks
exist) and at the bundle's threshold (F1, false-reject rate on good parts, escape rate of
defects), per defect type and per slice of the folder's ``metadata.csv``."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from rich.progress import Progress

from edgeft.anomaly.detection_metrics import auroc, pixel_auroc, pro_auc
from edgeft.anomaly.folder import InspectionItem, recorded_folder
from edgeft.bundle import Bundle
from edgeft.errors import EdgeftError
from edgeft.evaluation.bundle_eval import ModelScores
from edgeft.evaluation.slices import folder_slices
from edgeft.runtime.anomaly.detector import AnomalyDetector, AnomalyOutputs
from edgeft.runtime.anomaly.scores import raw_at_threshold

SPLITS = ("val", "test")


@dataclass
class AnomalyEvaluation:
    """Each model's figures on a split, and per model the items' raw scores and the raw score
    at its threshold (what the report's histogram and overlays show)."""

    bundle: Bundle
    source: Path
    split: str
    results: list[ModelScores]
    items: list[InspectionItem] = field(default_factory=list)
    raw: dict[str, np.ndarray] = field(default_factory=dict)  # model label -> raw scores
    cut: dict[str, float] = field(default_factory=dict)  # model label -> raw at the threshold


def inspection_items(
    bundle: Bundle, data: str | None, split: str
) -> tuple[Path, list[InspectionItem]]:
    """``split`` of ``data``, else of the folder the bundle records, split as it was."""
    if split not in SPLITS:
        raise EdgeftError(f"--split must be {' or '.join(SPLITS)} for an anomaly bundle")
    folder = recorded_folder(bundle.manifest.provenance, data)
    items = folder.val if split == "val" else folder.test
    if not items:
        raise EdgeftError(f"{folder.root}: no {split} items to evaluate on")
    return folder.root, items


def _masks(items: list[InspectionItem], size: tuple[int, int]) -> np.ndarray | None:
    """Every item's mask at the map's size (good parts: empty); None without any mask."""
    if not any(i.mask for i in items):
        return None
    masks = np.zeros((len(items), *size), dtype=bool)
    for row, item in enumerate(items):
        if item.mask is not None:
            with Image.open(item.mask) as mask:
                resized = mask.convert("L").resize((size[1], size[0]), Image.Resampling.NEAREST)
            masks[row] = np.asarray(resized) > 127
        elif item.is_defective:
            masks[row] = True  # no mask drawn: the whole part counts (as anomalib does)
    return masks


def _group_scores(
    raw: np.ndarray, flagged: np.ndarray, defective: np.ndarray, group: np.ndarray
) -> dict[str, Any]:
    """A group's AUROC (its defects against its good items, or all good items where it has
    none, as ELPV's probability slices need), false-reject and escape rates."""
    bad, good = group & defective, group & ~defective
    against = good if good.any() else ~defective
    row: dict[str, Any] = {"items": int(group.sum()), "defects": int(bad.sum())}
    if bad.any() and against.any():
        pick = bad | against
        row["image_auroc"] = auroc(raw[pick], defective[pick])
    if good.any():
        row["false_reject"] = float(flagged[good].mean())
    if bad.any():
        row["escape"] = float((~flagged[bad]).mean())
    return row


def score_outputs(
    outputs: AnomalyOutputs, items: list[InspectionItem], threshold: float, root: Path
) -> dict[str, Any]:
    defective = np.array([i.is_defective for i in items])
    flagged = outputs.scores > threshold
    scores: dict[str, Any] = {"items": len(items), "defects": int(defective.sum())}
    if defective.any() and not defective.all():
        scores["image_auroc"] = auroc(outputs.raw, defective)
    masks = _masks(items, outputs.maps.shape[1:])
    if masks is not None and masks.any() and not masks.all():
        scores["pixel_auroc"] = pixel_auroc(outputs.maps, masks)
        scores["pro"] = pro_auc(outputs.maps, masks)
    hits = int((flagged & defective).sum())
    scores |= {
        "threshold": threshold,
        "f1": 2 * hits / max(int(flagged.sum()) + int(defective.sum()), 1),
        "false_reject": float(flagged[~defective].mean()) if (~defective).any() else None,
        "escape": float((~flagged[defective]).mean()) if defective.any() else None,
    }
    kinds = sorted({i.defect for i in items if i.defect})
    scores["per_defect"] = {
        kind: _group_scores(
            outputs.raw, flagged, defective, np.array([i.defect == kind for i in items])
        )
        for kind in kinds
    }
    slices = folder_slices(root, [i.path for i in items])
    scores["slices"] = {
        name: _group_scores(outputs.raw, flagged, defective, mask)
        for name, mask in slices.items()
        if mask.any()
    }
    return scores


def evaluate_anomaly_bundle(
    bundle_path: str | Path,
    data: str | None = None,
    split: str = "test",
    precision: str = "all",
    progress: Progress | None = None,
) -> AnomalyEvaluation:
    """Each model of ``precision`` (fp32, int8 or all) of the anomaly bundle on ``split``."""
    bundle = Bundle.load(bundle_path)
    if precision not in ("fp32", "int8", "all"):
        raise EdgeftError(f"--model must be fp32, int8 or all, not {precision!r}")
    chosen = [
        m for m in bundle.manifest.models if precision in ("all", m.precision) and not m.candidate
    ]
    if not chosen:
        raise EdgeftError(f"{bundle.root} has no {precision} model")
    root, items = inspection_items(bundle, data, split)
    paths = [i.path for i in items]
    evaluated = AnomalyEvaluation(bundle, root, split, [], items)
    results = []
    for entry in chosen:
        detector = AnomalyDetector(bundle, entry=entry)
        advance = None
        if progress is not None:
            advance = partial(progress.advance, progress.add_task(entry.label, total=len(paths)))
        outputs = detector.outputs_of(paths, advance=advance)
        scores = score_outputs(outputs, items, detector.threshold, root)
        results.append(ModelScores(entry, bundle.size_of(entry), scores))
        evaluated.raw[entry.label] = outputs.raw
        evaluated.cut[entry.label] = raw_at_threshold(detector.head.spec)
    evaluated.results = results
    return evaluated

"""``edgeft validate`` for an anomaly bundle: every model this box can run scores the bundle's
acceptance set (validation parts stored in it, with each model's scores recorded at export)
through this box's engines. A model passes when it gives every item the verdict it had at
export; its AUROC, false-reject and escape rates on the set are reported beside."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeft.bundle import Bundle, ModelEntry
from edgeft.bundle.acceptance import load_acceptance_set, load_outputs
from edgeft.errors import EdgeftError
from edgeft.runtime.anomaly.detector import AnomalyDetector
from edgeft.runtime.anomaly.ranking import auroc
from edgeft.runtime.anomaly.scores import normalise
from edgeft.runtime.validation_report import LabelledItems, ModelValidation

GOOD = "good"


def _auroc(raw: np.ndarray, defective: np.ndarray) -> float | None:
    """None without both kinds of item."""
    return auroc(raw, defective) if defective.any() and not defective.all() else None


def detection_scores(raw: np.ndarray, flagged: np.ndarray, defective: np.ndarray) -> dict[str, Any]:
    return {
        "items": len(raw),
        "defects": int(defective.sum()),
        "image_auroc": _auroc(raw, defective),
        "false_reject": float(flagged[~defective].mean()) if (~defective).any() else None,
        "escape": float((~flagged[defective]).mean()) if defective.any() else None,
    }


def anomaly_validations(
    bundle: Bundle, runnable: Sequence[ModelEntry], data: LabelledItems | None
) -> tuple[str, int, list[ModelValidation]]:
    """What was scored, how many items, and each runnable model's result, held to the
    verdicts recorded at export."""
    spec = bundle.manifest.anomaly
    assert spec is not None
    if data is None:
        accepted = load_acceptance_set(bundle.root, bundle.manifest)
        if accepted is None:
            raise EdgeftError(
                f"{bundle.root} carries no acceptance set: validate it with `edgeft validate "
                "BUNDLE --data FOLDER` (good/ and defect folders)"
            )
        items, labels, source = accepted.inputs(bundle.root), accepted.labels, "acceptance set"
    else:
        items, labels, source = data.items, data.labels, data.source
    defective = np.array([label != GOOD for label in labels])
    results = []
    for entry in runnable:
        outputs = AnomalyDetector(bundle, entry=entry).outputs_of(items)
        flagged = outputs.scores > spec.threshold
        result = ModelValidation(
            model=entry.label,
            engine=entry.engine,
            precision=entry.precision,
            scheme=entry.int8_scheme.key if entry.int8_scheme else None,
            scores=detection_scores(outputs.raw, flagged, defective),
        )
        recorded = load_outputs(bundle.root, entry, len(items)) if data is None else None
        if recorded is not None:
            then = normalise(spec.for_model(entry.details), recorded[:, 0]) > spec.threshold
            moved = int((then != flagged).sum())
            result.recorded = {
                "agreement_with_recorded": float((then == flagged).mean()),
                "max_abs_raw_score_difference": float(np.abs(recorded[:, 0] - outputs.raw).max()),
            }
            if moved:
                result.passed = False
                result.reason = (
                    f"{moved} of {len(items)} acceptance verdicts differ from those recorded at "
                    "export: this host computes another model"
                )
        results.append(result)
    return source, len(items), results

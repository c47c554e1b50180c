"""Choosing, on validation, how an anomaly model scores and where it draws the line.

The distances are put in units of their spread over good validation parts (so patch and
embedding distances can be averaged, and the threshold reads the same for every model); with
labelled defects in validation the scoring with the best AUROC is taken and the threshold is
the F1-best cut, with good parts only it is the cut at the stated false-reject rate. With
variants (``groups``), each variant's distances get the scales of its own good parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from edgeft.anomaly.detection_metrics import auroc, f1_best_threshold
from edgeft.bundle.anomaly_spec import PARTS, AnomalySpec, GroupScales, ScoreScale
from edgeft.errors import EdgeftError
from edgeft.runtime.anomaly.scores import ImageDistances, raw_scores
from edgeft.runtime.anomaly.threshold import threshold_at_false_reject

AUTO = "auto"
# With good parts only, nothing says which scoring is best: the mix of every distance fitted
# (best on ELPV, see benchmarks/results/anomaly_elpv.md) sees small defects and whole-part ones.
GOOD_ONLY_SCORINGS = ("all", "mixed")  # the first whose distances were fitted
TIE_ORDER = ("all", "mixed", "patch", "gaussian", "embedding")


@dataclass(frozen=True)
class ValidationDistances:
    """Each validation item's patch distances ``[N, h, w]``, embedding distance, whether it
    is defective, (with variants) its group: its nearest good training image's, and (with
    Gaussians) its worst position's Mahalanobis distance."""

    grids: np.ndarray
    embedding: np.ndarray
    defective: np.ndarray
    group: np.ndarray | None = None
    gaussian: np.ndarray | None = None

    @property
    def patch(self) -> np.ndarray:
        return self.grids.reshape(len(self.grids), -1).max(axis=1)

    @property
    def distances(self) -> ImageDistances:
        return ImageDistances(self.patch, self.embedding, self.gaussian, self.group)

    @property
    def scorings(self) -> tuple[str, ...]:
        """The scorings these distances can make."""
        return tuple(s for s, parts in PARTS.items()
                     if self.gaussian is not None or "gaussian" not in parts)  # fmt: skip

    @property
    def has_defects(self) -> bool:
        return bool(self.defective.any())


def scale_of(distances: np.ndarray) -> ScoreScale:
    """Mean and standard deviation (a floor keeps one or identical items usable)."""
    centre = float(np.mean(distances))
    spread = float(np.std(distances))
    return ScoreScale(centre, max(spread, 1e-6 * max(abs(centre), 1.0)))


def recalibrate(spec: AnomalySpec, val: ValidationDistances) -> AnomalySpec:
    """``spec`` with scales re-fitted, by the same scoring and threshold rule, to another
    model's distances on the same validation items (an int8 feature network's): its threshold
    then stands for the same operating point."""
    rate = float(spec.threshold_rule.get("rate", 0.01))
    fitted, _ = calibrate(
        val, spec.scoring, rate, [g.name for g in spec.groups],
        map_sigma=spec.map_sigma, search_rows=spec.search_rows,
        gaussian_channels=spec.gaussian_channels, gaussian_pool=spec.gaussian_pool,
    )  # fmt: skip
    return replace(spec, **{k: getattr(fitted, k) for k in spec.scales()})


def calibrate(
    val: ValidationDistances,
    scoring: str = AUTO,
    false_reject: float = 0.01,
    groups: Sequence[str] = (),
    **spec: Any,
) -> tuple[AnomalySpec, dict[str, Any]]:
    """The spec (scales, scoring, normaliser, threshold 0.5) and what was measured choosing
    it; ``groups`` names the variants ``val.group`` counts; ``spec`` passes the other
    ``AnomalySpec`` fields (map smoothing, search chunk)."""
    if scoring not in (AUTO, *val.scorings):
        raise EdgeftError(
            f"scoring {scoring!r}: choose {AUTO} or one of {', '.join(val.scorings)}"
            + ("" if val.gaussian is not None else " (the others need --gaussians)")
        )
    good = ~val.defective
    if not good.any():
        raise EdgeftError("validation holds no good parts: the scores have no scale")
    placeholder = ScoreScale(0.0, 1.0)
    base = AnomalySpec(
        scoring=next(s for s in GOOD_ONLY_SCORINGS if s in val.scorings)
        if scoring == AUTO
        else scoring,
        patch_scale=scale_of(val.patch[good]),
        embedding_scale=scale_of(val.embedding[good]),
        gaussian_scale=None if val.gaussian is None else scale_of(val.gaussian[good]),
        normaliser=placeholder,
        map_spread=scale_of(val.grids[good].ravel()).spread,
        groups=tuple(_group_scales(val, groups)),
        **spec,
    )

    def raw(candidate: str) -> np.ndarray:
        return raw_scores(replace(base, scoring=candidate), val.distances)

    report: dict[str, Any] = {
        "val_items": len(val.defective),
        "val_defects": int(val.defective.sum()),
    }
    if val.has_defects:
        report["val_auroc"] = {s: auroc(raw(s), val.defective) for s in val.scorings}
        if scoring == AUTO:  # ties go to the mixes, then patch
            best = max(report["val_auroc"].values())
            chosen = next(s for s in TIE_ORDER if report["val_auroc"].get(s) == best)
            base = replace(base, scoring=chosen)
        scores = raw(base.scoring)
        cut = f1_best_threshold(scores, val.defective)
        rule: dict[str, Any] = {"rule": "f1-best"}
    else:
        scores = raw(base.scoring)
        cut = threshold_at_false_reject(scores, false_reject)
        rule = {"rule": "false-reject", "rate": false_reject}
    flagged = scores > cut
    report |= {
        "scoring": base.scoring,
        "val_false_reject": float(flagged[good].mean()),
        "val_escape": float((~flagged[val.defective]).mean()) if val.has_defects else None,
    }
    normaliser = ScoreScale(cut, scale_of(scores[good]).spread)
    return replace(base, normaliser=normaliser, threshold_rule=rule), report


def _group_scales(val: ValidationDistances, groups: Sequence[str]) -> list[GroupScales]:
    """Each variant's scales, from the good validation parts nearest to its training images;
    a variant with fewer than two of them has no spread to measure and is refused by name."""
    if not groups:
        return []
    assert val.group is not None
    good = ~val.defective
    scales = []
    for index, name in enumerate(groups):
        own = good & (val.group == index)
        if own.sum() < 2:
            raise EdgeftError(
                f"group {name!r}: {int(own.sum())} good validation part(s) are nearest to its "
                "training images; its scale needs at least 2 (add good parts of it to val/, "
                "or raise --val-share)"
            )
        gaussian = None if val.gaussian is None else scale_of(val.gaussian[own])
        scales.append(
            GroupScales(name, scale_of(val.patch[own]), scale_of(val.embedding[own]), gaussian)
        )
    return scales

"""Anomaly detection's side of ``quantize``: the int8 model is the feature network; each
candidate's features go through the bundle's own search and scoring (``AnomalyHead``, the fp32
bank, as the box runs it), and the budget holds image AUROC on validation parts with labelled
defects, or, with good parts only, the false-reject rate at the bundle's threshold. The drop's
interval resamples good and defective items apart, so every draw has both."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeft.anomaly.calibrate import ValidationDistances, recalibrate
from edgeft.anomaly.detection_metrics import auroc
from edgeft.anomaly.export import record_scores
from edgeft.anomaly.folder import recorded_folder
from edgeft.bundle import Bundle, Manifest
from edgeft.bundle.anomaly_spec import MODEL_SCALES, AnomalySpec
from edgeft.bundle.manifest import DropInterval, Fp32Agreement
from edgeft.data import ClassificationDataset
from edgeft.errors import EdgeftError
from edgeft.quantize.judging import CandidateScores, Ranker, Validator
from edgeft.quantize.tasks.base import BudgetTask
from edgeft.runtime.anomaly.detector import AnomalyHead, AnomalyOutputs
from edgeft.runtime.anomaly.scores import normalise, raw_at_threshold, raw_scores
from edgeft.runtime.budget_metrics import RESAMPLES, SEED
from edgeft.runtime.engines import open_session
from edgeft.runtime.scoring import EncodedSplit

AUROC_METRIC, FALSE_REJECT_METRIC = "image-auroc", "false-reject"
SHOWN = ("image_auroc", "false_reject", "escape", "agreement")


def _outputs(head: AnomalyHead, engine: str, path: Path, precision: str, data: EncodedSplit,
             exact: bool = False) -> AnomalyOutputs:  # fmt: skip
    session = open_session(engine, path, precision=precision, exact=exact)
    return AnomalyOutputs.concatenate([head(*session.run(batch)[:2]) for batch in data.batches])


def detection_metrics(
    raw: np.ndarray, data: EncodedSplit, spec: AnomalySpec, reference: np.ndarray | None = None
) -> dict[str, Any]:
    """AUROC, false-reject and escape rates at the threshold (where labelled), and verdict
    agreement with ``reference`` raw scores."""
    flagged = normalise(spec, raw) > spec.threshold
    scores: dict[str, Any] = {"items": len(raw)}
    if data.labels is not None:
        defective = data.labels.astype(bool)
        if defective.any() and not defective.all():
            scores["image_auroc"] = auroc(raw, defective)
        if (~defective).any():
            scores["false_reject"] = float(flagged[~defective].mean())
        if defective.any():
            scores["escape"] = float((~flagged[defective]).mean())
    if reference is not None:
        scores["agreement"] = float(
            (flagged == (normalise(spec, reference) > spec.threshold)).mean()
        )
    return scores


def _value(scores: dict[str, Any], metric: str) -> float:
    """Higher is better, so a drop is fp32's value minus the candidate's."""
    return scores["image_auroc"] if metric == AUROC_METRIC else -scores["false_reject"]


@dataclass(frozen=True)
class EngineAnomalyFp32:
    """One engine's fp32 raw scores on a role's items, and its int8 candidates judged
    against them (run in exact int8 arithmetic where the scheme saturates on this host)."""

    data: EncodedSplit
    engine: str
    head: AnomalyHead
    fp32: np.ndarray
    exact: bool = False

    def candidate(self, path: Path) -> tuple[np.ndarray, AnomalySpec]:
        """The int8 model's raw scores and its own scales, re-fitted on these items where they
        are labelled (its features sit elsewhere than fp32's); the scores are shifted so that
        its threshold falls on fp32's, and one cut tells both models' verdicts."""
        outputs = _outputs(self.head, self.engine, path, "int8", self.data, self.exact)
        spec = self.head.spec
        if self.data.labels is None:
            return outputs.raw, spec
        gaussian = outputs.gaussian if spec.gaussian_channels else None
        val = ValidationDistances(
            outputs.grids, outputs.nearest_good, self.data.labels.astype(bool), outputs.group,
            gaussian,
        )  # fmt: skip
        own = recalibrate(spec, val)
        raw = raw_scores(own, val.distances)
        return raw - raw_at_threshold(own) + raw_at_threshold(spec), own

    def scores(self) -> dict[str, Any]:
        return detection_metrics(self.fp32, self.data, self.head.spec)

    def validator(self, metric: str) -> Validator:
        """Drop in points of ``metric``; without labels, verdict disagreement in points.
        ``deviation`` is the mean change of the raw score, in good-part spreads; the scales
        a candidate was judged with are what it ships with (``MODEL_SCALES``)."""
        reference = self.scores()

        def validate(path: Path) -> tuple[float, CandidateScores]:
            raw, own = self.candidate(path)
            metrics = detection_metrics(raw, self.data, self.head.spec, self.fp32)
            deviation = float(np.abs(raw - self.fp32).mean())
            scores = CandidateScores(metrics, deviation, raw, SHOWN, {MODEL_SCALES: own.scales()})
            if self.data.labels is None:
                return 100.0 * (1.0 - metrics["agreement"]), scores
            return 100.0 * (_value(reference, metric) - _value(metrics, metric)), scores

        return validate

    def ranker(self) -> Ranker:
        def distance(path: Path) -> float:
            return float(np.abs(self.candidate(path)[0] - self.fp32).mean())

        return distance

    def agreement(self, path: Path) -> Fp32Agreement:
        raw, _ = self.candidate(path)
        metrics = detection_metrics(raw, self.data, self.head.spec, self.fp32)
        return Fp32Agreement(len(raw), metrics["agreement"], float(np.abs(raw - self.fp32).mean()))

    def drop_interval(self, predicted: np.ndarray, metric: str) -> DropInterval:
        """The paired drop with a 95% interval: good and defective items resampled apart."""
        if self.data.labels is None:
            raise ValueError("a paired drop interval needs labelled items")
        defective = self.data.labels.astype(bool)
        spec = self.head.spec

        def drop(rows: np.ndarray) -> float:
            labels = defective[rows]
            if metric == AUROC_METRIC:
                return 100.0 * (auroc(self.fp32[rows], labels) - auroc(predicted[rows], labels))
            good = rows[~labels]
            flagged = normalise(spec, predicted[good]) > spec.threshold
            before = normalise(spec, self.fp32[good]) > spec.threshold
            return 100.0 * float(flagged.mean() - before.mean())

        rng = np.random.default_rng(SEED)
        good, bad = np.flatnonzero(~defective), np.flatnonzero(defective)
        draws = [
            np.concatenate([rng.choice(good, len(good)), rng.choice(bad, len(bad))])
            for _ in range(RESAMPLES // 4)  # AUROC per draw: a quarter of the draws suffices
        ]
        low, high = np.percentile([drop(d) for d in draws], [2.5, 97.5])
        point = drop(np.arange(len(defective)))
        return DropInterval(round(point, 3), round(float(low), 3), round(float(high), 3))


@dataclass(frozen=True)
class AnomalyFp32:
    """A role's items and fp32's raw scores on them per engine (``Fp32Reference``)."""

    data: EncodedSplit
    heads: dict[str, AnomalyHead]
    fp32: dict[str, np.ndarray]

    @classmethod
    def of(cls, bundle: Bundle, data: EncodedSplit, engines: set[str]) -> AnomalyFp32:
        heads = {e: AnomalyHead(bundle, e) for e in engines}
        fp32 = {
            e: _outputs(heads[e], e, bundle.path_of(bundle.manifest.model(e, "fp32")), "fp32",
                        data).raw
            for e in engines
        }  # fmt: skip
        return cls(data, heads, fp32)

    def for_engine(self, engine: str, exact: bool = False) -> EngineAnomalyFp32:
        return EngineAnomalyFp32(self.data, engine, self.heads[engine], self.fp32[engine], exact)


class AnomalyBudget(BudgetTask):
    shown = ("items", *SHOWN)
    # each item costs a search per candidate; and the fallback only ranks layers by damage
    unlabelled_items = 128

    def dataset(self, bundle: Bundle, data: str | None) -> ClassificationDataset:
        return recorded_folder(bundle.manifest.provenance, data).as_dataset()

    def metric(self, asked: str, bundle: Bundle, dataset: ClassificationDataset | None) -> str:
        """``accuracy`` (the command's default) means AUROC where validation has defects,
        else the false-reject rate."""
        assert dataset is not None
        labels = {e.label for e in dataset.splits["val"]}
        both = labels == {0, 1}
        if asked == "accuracy":
            return AUROC_METRIC if both else FALSE_REJECT_METRIC
        if asked == AUROC_METRIC and not both:
            raise EdgeftError(
                "budget metric image-auroc needs defects and good parts in validation; "
                "use false-reject (or fit with --defects-to-val)"
            )
        if asked not in (AUROC_METRIC, FALSE_REJECT_METRIC):
            raise EdgeftError(
                f"budget metric {asked!r}: an anomaly bundle holds {AUROC_METRIC} or "
                f"{FALSE_REJECT_METRIC}"
            )
        return asked

    def reference(self, bundle: Bundle, data: EncodedSplit, engines: set[str]) -> AnomalyFp32:
        return AnomalyFp32.of(bundle, data, engines)

    def record_outputs(self, staging: Path, manifest: Manifest) -> Manifest:
        staged = Bundle(root=staging, manifest=manifest)  # not yet hashed: read, not verified
        models = [
            m if m.reference_outputs else replace(m, reference_outputs=record_scores(staged, m))
            for m in manifest.models
        ]
        return replace(manifest, models=models)

"""The data an int8 model is made and judged with, each role prepared once, in one place.

- ``calibration``: the items whose activations set the int8 ranges;
- ``search``: what the budget loop scores candidates on (the validation split, or, without labels,
  agreement with fp32 on the calibration items);
- ``confirmation``: a third of the validation split the search never sees, which has the last word
  on the model it accepts (where a third can resolve the budget on its own);
- ``unlabelled``: training items the calibration did not use, where damage is measured without
  labels to rank the layers kept in float.

Each judged role carries fp32's logits per engine; bound to one engine (``Fp32Logits.for_engine``)
it makes the validator and ranker the budget loop (``edgeft.quantize.budget``) calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress

from edgeft.bundle import Bundle
from edgeft.bundle.manifest import DropInterval, Fp32Agreement
from edgeft.data import ClassificationDataset, stratified_split
from edgeft.errors import DatasetError
from edgeft.evaluation.encoded_splits import encode_split
from edgeft.quantize.judging import CandidateScores, Ranker, Validator
from edgeft.quantize.tasks.base import Fp32Reference
from edgeft.runtime.budget_metrics import metric_value, paired_drop, resolves
from edgeft.runtime.predictor import softmax
from edgeft.runtime.scoring import (
    EncodedSplit,
    encode_items,
    entry_logits,
    model_logits,
    score_logits,
)

UNLABELLED_ITEMS = 512
CONFIRM_SHARE = 1 / 3  # of the validation split, held out of the search where it can


def deviation(logits: np.ndarray, fp32_logits: np.ndarray) -> float:
    """Mean L1 distance between the two models' class probabilities: quantization damage
    measured without labels, and far less noisy than counting flipped answers."""
    return float(np.abs(softmax(logits) - softmax(fp32_logits)).sum(1).mean())


@dataclass(frozen=True)
class Fp32Logits:
    """Items encoded once, and fp32's logits on them for each planned engine: what that engine's
    int8 candidates are compared with (``for_engine``)."""

    data: EncodedSplit
    fp32: dict[str, np.ndarray]

    @classmethod
    def of(cls, bundle: Bundle, data: EncodedSplit, engines: set[str]) -> Fp32Logits:
        return cls(
            data, {e: entry_logits(bundle, bundle.manifest.model(e, "fp32"), data) for e in engines}
        )

    def for_engine(self, engine: str, exact: bool = False) -> EngineFp32Logits:
        """These items and ``engine``'s fp32 logits, its int8 candidates run as ``exact`` says."""
        return EngineFp32Logits(self.data, engine, self.fp32[engine], exact)


@dataclass(frozen=True)
class EngineFp32Logits:
    """One engine's fp32 logits on a role's items, and how that engine's int8 candidates are
    judged against them: run through ``edgeft.runtime`` as the box runs them, or in exact int8
    arithmetic (``exact``) for a scheme whose kernels would saturate on this host."""

    data: EncodedSplit
    engine: str
    fp32: np.ndarray
    exact: bool = False

    def logits(self, path: Path) -> np.ndarray:
        """The int8 model at ``path`` on these items."""
        return model_logits(self.engine, path, "int8", self.data, exact=self.exact)

    def scores(self) -> dict[str, Any]:
        """fp32's own scores on these items."""
        return score_logits(self.fp32, self.data)

    def validator(self, metric: str = "accuracy") -> Validator:
        """Drop in points of ``metric`` against fp32; without labels, top-1 disagreement with
        fp32 in points. Scores carry ``deviation`` (mean L1 distance of the probabilities) and
        ``predicted`` (for the paired interval)."""
        reference = self.scores()

        def validate(path: Path) -> tuple[float, CandidateScores]:
            logits = self.logits(path)
            metrics = score_logits(logits, self.data, reference=self.fp32)
            scores = CandidateScores(metrics, deviation(logits, self.fp32), logits.argmax(axis=1))
            if self.data.labels is not None:
                drop = 100.0 * (metric_value(reference, metric) - metric_value(metrics, metric))
            else:
                drop = 100.0 * (1.0 - metrics["agreement"])
            return drop, scores

        return validate

    def ranker(self) -> Ranker:
        """A candidate's ``deviation`` from fp32 on these items (no labels needed)."""

        def distance(path: Path) -> float:
            return deviation(self.logits(path), self.fp32)

        return distance

    def agreement(self, path: Path) -> Fp32Agreement:
        """Top-1 agreement and deviation of an int8 model with fp32 on these items."""
        logits = self.logits(path)
        return Fp32Agreement(
            items=len(self.data),
            agreement=float((logits.argmax(1) == self.fp32.argmax(1)).mean()),
            deviation=deviation(logits, self.fp32),
        )

    def drop_interval(self, predicted: np.ndarray, metric: str) -> DropInterval:
        """The paired drop of int8 ``predicted`` against fp32, with its interval (these items
        must be labelled)."""
        if self.data.labels is None:
            raise ValueError("a paired drop interval needs labelled items")
        fp32 = self.fp32.argmax(axis=1)
        interval = paired_drop(self.data.labels, fp32, predicted, self.data.classes, metric)
        return DropInterval.from_dict(interval)


@dataclass(frozen=True)
class BudgetData:
    calibration: EncodedSplit
    search: Fp32Reference
    confirmation: Fp32Reference | None
    unlabelled: Fp32Reference | None

    @classmethod
    def prepare(
        cls,
        bundle: Bundle,
        dataset: ClassificationDataset | None,
        calibration_items: Sequence[str],
        max_drop: float,
        engines: set[str],
        console: Console,
        reference: Callable[[Bundle, EncodedSplit, set[str]], Fp32Reference] | None = None,
        unlabelled_items: int = UNLABELLED_ITEMS,
    ) -> BudgetData:
        """Encode every role once (through ``edgeft.runtime``, as the box will) and run fp32
        on the judged ones: ``reference`` (the task's; default ``Fp32Logits.of``), on at most
        ``unlabelled_items`` for the float fallback's ranking."""
        reference = reference or Fp32Logits.of
        with Progress(console=console, transient=True) as progress:
            calibration = encode_items(
                bundle, calibration_items, progress=progress, description="encoding calibration set"
            )
            halves = _confirmation_split(dataset, max_drop)
            confirmation = None
            if dataset is not None and halves is not None:
                search = encode_split(bundle, dataset, "val", progress, halves[0])
                confirmation = encode_split(bundle, dataset, "val", progress, halves[1])
            elif dataset is not None:
                search = encode_split(bundle, dataset, "val", progress)
                console.print(
                    f"[dim]no confirmation slice: a third of {len(search)} validation items "
                    "cannot resolve the budget on its own; the search's figures are the final "
                    "ones[/]"
                )
            else:
                console.print(
                    "[yellow]warning:[/] no labelled data: the budget is top-1 agreement with fp32 "
                    "on the calibration images"
                )
                search = calibration
            items = _unlabelled_items(dataset, calibration_items, unlabelled_items)
            unlabelled = (
                encode_items(bundle, items, progress=progress, description="encoding unlabelled")
                if items
                else None
            )

        def judged(data: EncodedSplit | None) -> Fp32Reference | None:
            return None if data is None else reference(bundle, data, engines)

        return cls(
            calibration,
            reference(bundle, search, engines),
            judged(confirmation),
            judged(unlabelled),
        )


def _unlabelled_items(
    dataset: ClassificationDataset | None, calibration: Sequence[str], most: int
) -> list[str]:
    """Training items the calibration did not use, at most ``most`` (seeded)."""
    if dataset is None:
        return []
    used = set(calibration)
    pool = [e.item for e in dataset.splits["train"] if e.item not in used]
    order = np.random.default_rng(0).permutation(len(pool))[:most]
    return [pool[i] for i in sorted(order)]


def _confirmation_split(
    dataset: ClassificationDataset | None, max_drop: float
) -> tuple[list[int], list[int]] | None:
    """Validation indices for the search and for the confirmation slice, when a third of the
    split can resolve the budget on its own (one item worth at most ``max_drop`` points);
    otherwise None, and the search's own figures stand."""
    if dataset is None or max_drop <= 0:
        return None
    examples = dataset.splits["val"]
    if not resolves(int(len(examples) * CONFIRM_SHARE), max_drop):
        return None
    try:
        search, confirm = stratified_split(
            [e.label for e in examples], (1.0 - CONFIRM_SHARE, CONFIRM_SHARE), seed=0
        )
    except DatasetError:  # a class too small to split (one defective part): no confirmation
        return None
    return search, confirm

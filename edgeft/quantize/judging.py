"""How a candidate int8 model file is judged against fp32: by the budget (a labelled split's
drop), by the float fallback's ranking (distance on unlabelled items), and by its speed here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeft.bundle.manifest import Int8Speed
from edgeft.runtime.scoring import HEADLINE, headline


@dataclass
class CandidateScores:
    """What a validator measured of a candidate: its task's ``metrics`` (a classifier's as
    ``score_logits`` gives them: ``examples``, ``accuracy``, ``macro_f1``, ``per_class``,
    ``agreement`` with fp32), its distance from fp32 without labels (``deviation``: mean L1 of
    the class probabilities, or of an anomaly score), and its answers (``predicted``: top-1
    classes or raw scores, for the paired interval). An attempt that failed has none of them."""

    metrics: dict[str, Any] = field(default_factory=dict)
    deviation: float | None = None
    predicted: np.ndarray | None = field(default=None, repr=False)
    shown: Sequence[str] = HEADLINE  # which of ``metrics`` tables and the manifest show
    record: dict[str, Any] = field(default_factory=dict)  # what ships with it, if accepted

    def headline(self, keys: Sequence[str] | None = None) -> dict[str, Any]:
        """The figures tables and the manifest show (``shown``), those it has."""
        return headline(self.metrics, self.shown if keys is None else keys)


# A candidate file -> (accuracy drop in points against fp32, its scores). Lower is better.
Validator = Callable[[Path], tuple[float, CandidateScores]]
# A candidate file -> how far it is from fp32 (no labels needed). Lower is better.
Ranker = Callable[[Path], float]
# A candidate file -> its speed on this host against fp32 (batch 1).
Timer = Callable[[Path], Int8Speed]


@dataclass(frozen=True)
class Judges:
    """How the budget loop judges candidates: ``validate`` against the budget; ``rank``, the
    float fallback's layer ranking (None: the validator's ``deviation``); ``time``, speed against
    fp32 where this host runs the scheme's kernels (None: not timed)."""

    validate: Validator
    rank: Ranker | None = None
    time: Timer | None = None

"""What ``quantize`` asks of a bundle's task: the labelled data it judges on, the metric its
budget holds, fp32's reference outputs per engine (which make the budget loop's validator and
ranker), and the outputs recorded on the acceptance set. The loop itself, the backends, the
speed check and the manifest records are the same for every task."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgeft.bundle import Bundle, Manifest
from edgeft.bundle.manifest import DropInterval, Fp32Agreement
from edgeft.data import ClassificationDataset
from edgeft.quantize.judging import Ranker, Validator
from edgeft.runtime.scoring import EncodedSplit


class EngineReference(Protocol):
    """fp32 on one engine and one role's items, and how int8 candidates are judged against it."""

    @property
    def data(self) -> EncodedSplit: ...

    def scores(self) -> dict[str, Any]: ...

    def validator(self, metric: str) -> Validator: ...

    def ranker(self) -> Ranker: ...

    def agreement(self, path: Path) -> Fp32Agreement: ...

    def drop_interval(self, predicted: np.ndarray, metric: str) -> DropInterval: ...


class Fp32Reference(Protocol):
    """One role's items, encoded once, with fp32's outputs on each planned engine."""

    @property
    def data(self) -> EncodedSplit: ...

    def for_engine(self, engine: str, exact: bool = False) -> EngineReference: ...


class BudgetTask(ABC):
    """One task's side of ``quantize`` (``edgeft.quantize.tasks.budget_task`` picks it)."""

    shown: tuple[str, ...]  # the figures tables and the manifest show of a model
    unlabelled_items: int  # at most this many training items rank the layers kept in float

    @abstractmethod
    def dataset(self, bundle: Bundle, data: str | None) -> ClassificationDataset | None:
        """``data``, else the labelled data the bundle records (None: there is none)."""

    @abstractmethod
    def metric(self, asked: str, bundle: Bundle, dataset: ClassificationDataset | None) -> str:
        """The metric the budget holds, ``asked`` checked (and its default resolved)."""

    @abstractmethod
    def reference(self, bundle: Bundle, data: EncodedSplit, engines: set[str]) -> Fp32Reference:
        """fp32's outputs on ``data`` for each of ``engines``."""

    @abstractmethod
    def record_outputs(self, staging: Path, manifest: Manifest) -> Manifest:
        """The staged manifest with each model's outputs on the acceptance set saved."""

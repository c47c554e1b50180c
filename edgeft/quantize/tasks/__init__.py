"""Each task's side of ``quantize`` (``base.BudgetTask``): one file per task, chosen here by
the bundle's ``task``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeft.bundle import Manifest
from edgeft.bundle.manifest import ANOMALY_TASK

if TYPE_CHECKING:
    from edgeft.quantize.tasks.base import BudgetTask


def budget_task(manifest: Manifest) -> BudgetTask:
    # imported here: each task's module imports the budget data, which imports ``base``
    if manifest.task == ANOMALY_TASK:
        from edgeft.quantize.tasks.anomaly import AnomalyBudget

        return AnomalyBudget()
    from edgeft.quantize.tasks.classification import ClassificationBudget

    return ClassificationBudget()

"""Classification's side of ``quantize``: the dataset the run recorded, accuracy, macro-F1 or
a class's recall, and fp32's logits."""

from __future__ import annotations

from pathlib import Path

from edgeft.bundle import Bundle, Manifest
from edgeft.data import ClassificationDataset
from edgeft.evaluation.bundle_eval import recorded_dataset
from edgeft.export.acceptance import record_outputs
from edgeft.quantize.budget_data import UNLABELLED_ITEMS, Fp32Logits
from edgeft.quantize.tasks.base import BudgetTask, Fp32Reference
from edgeft.runtime.budget_metrics import check_metric
from edgeft.runtime.scoring import EncodedSplit


class ClassificationBudget(BudgetTask):
    shown = ("examples", "accuracy", "macro_f1", "agreement")
    unlabelled_items = UNLABELLED_ITEMS

    def dataset(self, bundle: Bundle, data: str | None) -> ClassificationDataset | None:
        return recorded_dataset(bundle, data)

    def metric(self, asked: str, bundle: Bundle, dataset: ClassificationDataset | None) -> str:
        return check_metric(asked, bundle.manifest.labels)

    def reference(self, bundle: Bundle, data: EncodedSplit, engines: set[str]) -> Fp32Reference:
        return Fp32Logits.of(bundle, data, engines)

    def record_outputs(self, staging: Path, manifest: Manifest) -> Manifest:
        return record_outputs(staging, manifest)

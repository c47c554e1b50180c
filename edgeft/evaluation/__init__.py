"""Scoring models: the metrics every run, bundle and report uses."""

from edgeft.evaluation.bundle_eval import ModelScores, evaluate_bundle, per_class_deltas
from edgeft.evaluation.compare import Comparison, compare_bundles, push_candidate
from edgeft.runtime.metrics import classification_metrics

__all__ = [
    "Comparison",
    "ModelScores",
    "classification_metrics",
    "compare_bundles",
    "evaluate_bundle",
    "per_class_deltas",
    "push_candidate",
]

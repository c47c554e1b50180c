"""Scoring models: the metrics every run, bundle and report uses."""

from edgeft.evaluation.bundle_eval import ModelScores, evaluate_bundle, model_size, per_class_deltas
from edgeft.runtime.metrics import classification_metrics

__all__ = [
    "ModelScores",
    "classification_metrics",
    "evaluate_bundle",
    "model_size",
    "per_class_deltas",
]

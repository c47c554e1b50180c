"""Scoring models: the metrics every run, bundle and report uses."""

from edgeft.evaluation.metrics import classification_metrics

__all__ = ["classification_metrics"]

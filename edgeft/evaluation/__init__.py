"""Evaluating bundles on datasets (build side): a split through a bundle's encoder, each model's
scores on it, accuracy per slice, and a candidate against production. The metrics themselves
are ``edgeft.runtime``'s (``classification_metrics``, ``scoring``), so the box scores the same way.
"""

from edgeft.evaluation.bundle_eval import (
    BundleEvaluation,
    ModelScores,
    evaluate_bundle,
    evaluate_recorded,
    per_class_deltas,
)
from edgeft.evaluation.compare import (
    CandidateReview,
    Comparison,
    compare_bundles,
    push_candidate,
    review_candidate,
)

__all__ = [
    "BundleEvaluation",
    "CandidateReview",
    "Comparison",
    "ModelScores",
    "compare_bundles",
    "evaluate_bundle",
    "evaluate_recorded",
    "per_class_deltas",
    "push_candidate",
    "review_candidate",
]

"""Anomaly detection from good parts only (build side): an inspection folder in the MVTec AD
layout, PatchCore-style patch features of a pretrained backbone, a greedy coreset memory bank,
nearest-neighbour scores with a defect map, the scoring and threshold chosen on validation, and
the export to a bundle (the box side runs it: ``edgeft.runtime.anomaly``)."""

from edgeft.anomaly.fit import AnomalyRecipe, AnomalyRun, fit_anomaly
from edgeft.anomaly.folder import InspectionFolder, InspectionItem, read_inspection_folder
from edgeft.anomaly.patchcore import (
    AnomalyScores,
    PatchCoreModel,
    PatchCoreSettings,
    fit_patchcore,
)

__all__ = [
    "AnomalyRecipe",
    "AnomalyRun",
    "AnomalyScores",
    "InspectionFolder",
    "InspectionItem",
    "PatchCoreModel",
    "PatchCoreSettings",
    "fit_anomaly",
    "fit_patchcore",
    "read_inspection_folder",
]

"""Anomaly detection from good parts only (build side): an inspection folder in the MVTec AD
layout, PatchCore-style patch features of a pretrained backbone, a greedy coreset memory bank,
and nearest-neighbour scores with a defect map."""

from edgeft.anomaly.folder import InspectionFolder, InspectionItem, read_inspection_folder
from edgeft.anomaly.patchcore import (
    AnomalyScores,
    PatchCoreModel,
    PatchCoreSettings,
    fit_patchcore,
)

__all__ = [
    "AnomalyScores",
    "InspectionFolder",
    "InspectionItem",
    "PatchCoreModel",
    "PatchCoreSettings",
    "fit_patchcore",
    "read_inspection_folder",
]

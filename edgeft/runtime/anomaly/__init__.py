"""Anomaly detection on the box: an anomaly bundle's feature network and chunked
nearest-neighbour search on one engine, scores normalised to (0, 1), defect maps and overlays,
and thresholds moved without re-export. numpy and the engine only."""

from edgeft.runtime.anomaly.detector import AnomalyDetector, AnomalyOutputs, AnomalyResult

__all__ = ["AnomalyDetector", "AnomalyOutputs", "AnomalyResult"]

"""Monitoring on the box: the prediction log, drift, label-free accuracy, uncertain samples."""

"""Export to the bundle: fp32 ONNX (checked against torch) and OpenVINO IR."""

from edgeft.export.bundle_export import export_bundle

__all__ = ["export_bundle"]

"""Export to the bundle: fp32 ONNX (checked against torch) and OpenVINO IR."""

from edgeft.export.bundle_export import ExportSource, export_bundle, load_source

__all__ = ["ExportSource", "export_bundle", "load_source"]

"""A Triton model repository: ``<model>/config.pbtxt``, ``<model>/labels.txt`` and
``<model>/<version>/model.onnx`` (ONNX Runtime backend) or ``model.xml`` + ``.bin`` (OpenVINO
backend), served at exactly the production version with dynamic batching."""

from __future__ import annotations

from pathlib import Path

from edgeft.bundle import TensorSpec
from edgeft.repository.layouts.served_model import ServedModel

MAX_BATCH = 8
_TYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "int64": "TYPE_INT64",
    "int32": "TYPE_INT32",
    "uint8": "TYPE_UINT8",
}


def write(root: Path, models: list[ServedModel]) -> None:
    for model in models:
        (root / model.name / "config.pbtxt").write_text(config_pbtxt(model), encoding="utf-8")
        (root / model.name / "labels.txt").write_text("\n".join(model.manifest.labels) + "\n")


def config_pbtxt(model: ServedModel) -> str:
    """Triton's text-format ``ModelConfig`` for one laid-out model."""
    backend = (
        'platform: "onnxruntime_onnx"\ndefault_model_filename: "model.onnx"'
        if model.entry.engine == "onnxruntime"
        else 'backend: "openvino"\ndefault_model_filename: "model.xml"'
    )
    inputs = ",\n".join(_tensor(spec) for spec in model.manifest.inputs)
    outputs = ",\n".join(
        _tensor(spec, 'label_filename: "labels.txt"') for spec in model.manifest.outputs
    )
    return (
        f'name: "{model.name}"\n{backend}\nmax_batch_size: {MAX_BATCH}\n'
        f"version_policy: {{ specific: {{ versions: [{model.version}] }} }}\n"
        f"input [\n{inputs}\n]\noutput [\n{outputs}\n]\n"
        "dynamic_batching { max_queue_delay_microseconds: 0 }\n"
        "instance_group [ { count: 1, kind: KIND_CPU } ]\n"
    )


def _tensor(spec: TensorSpec, extra: str = "") -> str:
    """One input or output; the batch axis is Triton's own (``max_batch_size``), not in dims."""
    dims = ", ".join(str(d) for d in spec.shape[1:])
    lines = [f'name: "{spec.name}"', f"data_type: {_TYPES[spec.dtype]}", f"dims: [ {dims} ]"]
    return (
        "  {\n" + "".join(f"    {line}\n" for line in [*lines, *([extra] if extra else [])]) + "  }"
    )

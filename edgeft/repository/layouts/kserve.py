"""A KServe ``InferenceService`` that runs the laid-out repository on Triton or OVMS (both
speak the same v2 protocol as ``edgeft serve``, so clients do not change)."""

from __future__ import annotations

from pathlib import Path

_PREDICTORS = {
    "triton": "    triton:\n      storageUri: {uri}\n",
    "ovms": (
        "    model:\n      modelFormat:\n        name: openvino_ir\n"
        "      runtime: kserve-ovms\n      storageUri: {uri}\n"
        '      args: ["--config_path=/mnt/models/config.json"]\n'
    ),
}


def write(root: Path, format: str) -> None:
    manifest = (
        "# Copy this folder to the storage the cluster reads (e.g. a PVC), then kubectl apply -f.\n"
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n"
        f"  name: edgeft-{format}\nspec:\n  predictor:\n"
        + _PREDICTORS[format].format(uri=f"pvc://edgeft-models/{format}")
    )
    (root / "inferenceservice.yaml").write_text(manifest, encoding="utf-8")

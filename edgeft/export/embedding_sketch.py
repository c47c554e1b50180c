"""The exported graph's second output: the pooled features, projected to a few dimensions.

Multivariate drift needs what the model sees, not just what it answers: the input of the
classification head is the network's summary of the image or text. Exporting it whole (1,280
floats for MobileNetV2) would make every prediction log row large, so the graph projects it onto
the top principal components of the validation split's features, fitted at export, and adds
one last column: the features' mean squared reconstruction error from those components (what
the projection cannot see: NannyML's multivariate drift measure). The monitor compares
production's sketch with the validation split's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

from edgeft.bundle.manifest import EMBEDDING_OUTPUT as EMBEDDING
from edgeft.zoo.network import last_linear

FEATURES = "features"
DIMENSIONS = 8


TAP_SCOPE = "model"  # FeatureTap's attribute holding the network: the exporter's name scope


class FeatureTap(nn.Module):
    """``model`` returning (logits, the classification head's input)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model  # named as TAP_SCOPE
        self.head = last_linear(model)[1]

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        captured: list[torch.Tensor] = []
        hook = self.head.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            logits = self.model(*inputs)
        finally:
            hook.remove()
        return logits, captured[-1]


@dataclass(frozen=True)
class SketchProjection:
    """``(features - mean) @ components.T``, the top principal directions of the features, and
    the mean squared error of rebuilding the features from them, as one last column."""

    mean: np.ndarray  # (features,)
    components: np.ndarray  # (dimensions, features)

    @classmethod
    def fit(cls, features: np.ndarray, dimensions: int = DIMENSIONS) -> SketchProjection:
        mean = features.mean(axis=0)
        _, _, directions = np.linalg.svd(features - mean, full_matrices=False)
        keep = max(1, min(dimensions, len(features) - 1, features.shape[1]))
        return cls(mean.astype(np.float32), directions[:keep].astype(np.float32))

    @property
    def width(self) -> int:
        """Columns of the sketch: the components, then the reconstruction error."""
        return len(self.components) + 1

    def __call__(self, features: np.ndarray) -> np.ndarray:
        centred = features - self.mean
        sketch = centred @ self.components.T
        error = ((centred - sketch @ self.components) ** 2).mean(axis=1, keepdims=True)
        return np.hstack([sketch, error])


def project_features_output(path: str, projection: SketchProjection) -> None:
    """Rewrite the ONNX file at ``path`` so its ``features`` output becomes the ``embedding``
    sketch: centre, project, rebuild, and append the reconstruction error."""
    model = onnx.load(path)
    graph = model.graph
    output = next(o for o in graph.output if o.name == FEATURES)
    graph.initializer.extend(
        [
            numpy_helper.from_array(projection.mean, "sketch_mean"),
            numpy_helper.from_array(np.ascontiguousarray(projection.components.T), "sketch_axes"),
            numpy_helper.from_array(projection.components, "sketch_components"),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Sub", [FEATURES, "sketch_mean"], ["sketch_centred"]),
            helper.make_node("MatMul", ["sketch_centred", "sketch_axes"], ["sketch"]),
            helper.make_node("MatMul", ["sketch", "sketch_components"], ["sketch_rebuilt"]),
            helper.make_node("Sub", ["sketch_centred", "sketch_rebuilt"], ["sketch_residual"]),
            helper.make_node("Mul", ["sketch_residual", "sketch_residual"], ["sketch_squared"]),
            helper.make_node("ReduceMean", ["sketch_squared"], ["sketch_error"], axes=[1]),
            helper.make_node("Concat", ["sketch", "sketch_error"], [EMBEDDING], axis=1),
        ]
    )
    for node in graph.node:
        node.name = _without_tap_scope(node.name)
    graph.output.remove(output)
    graph.output.append(
        helper.make_tensor_value_info(
            EMBEDDING, onnx.TensorProto.FLOAT, ["batch", projection.width]
        )
    )
    onnx.checker.check_model(model)
    onnx.save(model, path)


def _without_tap_scope(name: str) -> str:
    """``/model/model.2/model.2.0/Conv`` -> ``/2/2.0/Conv``: a node named as in the graph
    exported without ``FeatureTap``, so layer names (``quantize --keep-float``, reports) are the
    network's own."""
    parts = name.split("/")
    if len(parts) < 3 or parts[1] != TAP_SCOPE:
        return name
    prefix = f"{TAP_SCOPE}."
    return "/".join(["", *(p.removeprefix(prefix) for p in parts[2:])])

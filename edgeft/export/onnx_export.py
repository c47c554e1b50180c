"""torch -> one self-contained fp32 ONNX file with a dynamic batch axis, checked against torch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeft.errors import EdgeftError
from edgeft.library_noise import quiet_onnx_export
from edgeft.runtime.engines import open_session

OPSET = 17
# Max |onnx - torch| on logits, relative to the logits' scale: float reordering stays far below.
TOLERANCE = 1e-4


@contextmanager
def _attention_as_plain_ops() -> Iterator[None]:
    """``nn.MultiheadAttention`` (torchvision's ViT) takes a fused fast path in eval mode under
    no_grad, which has no ONNX symbolic; tracing the plain path exports the same maths."""
    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


def export_onnx(
    model: nn.Module,
    example: dict[str, torch.Tensor],
    output_names: list[str],
    path: Path,
    dynamic_axes: dict[str, dict[int, str]],
    tolerance: float | None = TOLERANCE,
) -> float:
    """Write ``path`` and return the largest relative deviation from torch on ``example``;
    above ``tolerance`` (None: only measured) the export is refused.

    The TorchScript exporter writes one file (no side ``.onnx.data``) in well under a second.
    """
    model = model.eval()
    names = list(example)
    with torch.no_grad(), _attention_as_plain_ops(), quiet_onnx_export():
        try:
            torch.onnx.export(
                model,
                tuple(example.values()),
                str(path),
                input_names=names,
                output_names=output_names,
                dynamic_axes=dynamic_axes,
                opset_version=OPSET,
                dynamo=False,
            )
        except torch.onnx.errors.UnsupportedOperatorError as exc:
            raise EdgeftError(f"ONNX export failed: {exc}") from exc
        expected = model(*example.values())
    expected = (expected if isinstance(expected, torch.Tensor) else expected[0]).numpy()
    session = open_session("onnxruntime", path)
    actual = session.run({n: t.numpy() for n, t in example.items()})[0]
    deviation = float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-6))
    if tolerance is not None and deviation > tolerance:
        raise EdgeftError(f"ONNX export deviates from torch by {deviation:.2e} (> {tolerance:.0e})")
    return deviation

"""The QAT steps leave the libraries' known-harmless messages out of the output, and only those:
torch's CUDA probe, NNCF's INFO lines and the TracerWarnings of NNCF's quantizers are gone, while
an edgeft warning and a TracerWarning from the model's own code still show. The same holds for
the constant transformers' attention-mask helper traces in every fp32 text-model export."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.jit import TracerWarning
from transformers.modeling_attn_mask_utils import AttentionMaskConverter

from edgeft.export.onnx_export import export_onnx

# A fresh interpreter: torch probes for CUDA once per process, when NNCF first imports
# torch.utils.cpp_extension, and ``-W default`` shows every warning once per place.
_CHILD = """
import logging, sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from edgeft.export.qat_export import export_qat_onnx
from edgeft.train.qat import insert_fake_quantization


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)
        self.register_buffer("gain", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.conv(x).relu().mean(dim=(2, 3))
        return self.fc(features) * self.gain.item()  # the model's own TracerWarning


torch.manual_seed(0)
images = torch.randn(8, 3, 16, 16)
loader = DataLoader(TensorDataset(images, torch.zeros(8, dtype=torch.long)), batch_size=4)
quantized = insert_fake_quantization(Tiny(), loader, images=8)
export_qat_onnx(
    quantized, {"pixel_values": images[:2]}, ["logits"], Path(sys.argv[1]) / "qat.onnx",
    {"pixel_values": {0: "batch"}},
)
logging.getLogger("edgeft.export").warning("edgeft warning still shown")
"""


def test_qat_steps_hide_only_the_known_library_noise(tmp_path: Path) -> None:
    env = os.environ | {
        # a CUDA toolkit folder but no usable GPU: the host on which torch logs its probe
        "CUDA_HOME": str(tmp_path),
        "CUDA_VISIBLE_DEVICES": "",
    }
    child = subprocess.run(
        [sys.executable, "-W", "default", "-c", _CHILD, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # a first run compiles NNCF's CPU extension
    )
    output = child.stdout + child.stderr
    assert child.returncode == 0, output
    assert (tmp_path / "qat.onnx").is_file()
    assert "No CUDA runtime is found" not in output
    assert "INFO:nncf" not in output
    assert "nncf/torch/quantization/layers.py" not in output
    assert "edgeft warning still shown" in child.stderr
    # the model's own ``.item()``: inside a QAT model NNCF's hooks run it, so it is attributed to
    # their module, not to the quantizers'
    assert "TracerWarning" in child.stderr


class _MaskedSum(nn.Module):
    """A text encoder's first step: transformers' additive attention mask, then a constant of
    its own made with ``torch.tensor``, which tracing records as a constant and warns about."""

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        additive = AttentionMaskConverter._expand_mask(mask, torch.float32)
        return additive.sum(dim=(1, 2)) * torch.tensor(2.0)


def test_onnx_export_hides_only_transformers_mask_constant(
    tmp_path: Path, recwarn: pytest.WarningsRecorder
) -> None:
    example = {"mask": torch.ones(2, 5)}
    export_onnx(_MaskedSum(), example, ["out"], tmp_path / "m.onnx", {"mask": {0: "batch"}})
    tracer = [w for w in recwarn if issubclass(w.category, TracerWarning)]
    assert [Path(w.filename).name for w in tracer] == [Path(__file__).name]

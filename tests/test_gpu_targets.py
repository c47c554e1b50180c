"""GPU targets say why they cannot run where they cannot: no NVIDIA driver, the CPU build of
ONNX Runtime; and a GPU target is refused there, never run on the CPU instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeft.errors import EdgeftError
from edgeft.targets import resolve_target
from edgeft.targets.host import nvidia_gpus, onnxruntime_providers, onnxruntime_wheel
from edgeft.targets.profile import load_targets, parse_target

NO_DRIVER = not nvidia_gpus()


def test_the_driver_listing_names_each_gpu(tmp_path: Path) -> None:
    for index, model in enumerate(["NVIDIA H100 80GB HBM3", "NVIDIA L4"]):
        folder = tmp_path / f"0000:0{index}:00.0"
        folder.mkdir()
        (folder / "information").write_text(f"Model: \t {model}\nIRQ:   42\nBus Type:  PCIe\n")
    assert nvidia_gpus(tmp_path) == ("NVIDIA H100 80GB HBM3", "NVIDIA L4")
    assert nvidia_gpus(tmp_path / "absent") == ()


@pytest.mark.skipif(not NO_DRIVER, reason="this host has an NVIDIA driver")
def test_without_a_gpu_the_nvidia_target_says_why_and_is_refused() -> None:
    reasons = load_targets()["nvidia-gpu"].mismatches()
    assert any(r.startswith("no NVIDIA GPU driver") for r in reasons)
    if "CUDAExecutionProvider" not in onnxruntime_providers():
        assert onnxruntime_wheel() == "onnxruntime"
        assert any("make setup-gpu" in r for r in reasons)
    with pytest.raises(EdgeftError, match="target nvidia-gpu cannot run on this host: no NVIDIA"):
        resolve_target("nvidia-gpu")


def test_an_unknown_gpu_vendor_is_refused() -> None:
    data = {"name": "x", "requires": {"gpus": ["voodoo"]}, "engines": {"onnxruntime": {}}}
    with pytest.raises(EdgeftError, match="unknown vendor voodoo"):
        parse_target(data)

"""Quantization-aware training end to end: run -> QAT weights -> int8 models in the bundle ->
the quantize step validates the QAT models instead of calibrating from scratch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from edgeft.bundle import Bundle
from edgeft.bundle.manifest import Int8Speed
from edgeft.export import export_bundle
from edgeft.quantize import QuantizeConfig, quantize_bundle
from edgeft.runtime import Predictor
from edgeft.train import Recipe, finetune
from edgeft.train.run_folder import QAT_CONFIG, QAT_MODEL
from tests.test_finetune import photos  # noqa: F401 - the shared tiny real-photo dataset
from tests.test_on_target_int8 import VNNI

QUIET = Console(quiet=True)


def test_qat_run_exports_int8_models_that_quantize_keeps(
    photos: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recipe = Recipe(
        model="mobilenet_v2",
        data=str(photos),
        strategy="feature-extraction",
        epochs=2,
        batch_size=8,
        image_size=64,
        precision="fp32",
        qat=True,
        qat_images=16,
    )
    result = finetune(recipe, tmp_path / "run", console=QUIET)
    qat = result.metrics["qat"]
    assert qat["images"] == 16 and 0.0 <= qat["test"]["accuracy"] <= 1.0
    assert (tmp_path / "run" / QAT_MODEL).is_file()
    assert json.loads((tmp_path / "run" / QAT_CONFIG).read_text())["compression_state"]
    assert "qat" in json.loads((tmp_path / "run" / "metrics.json").read_text())

    bundle = export_bundle(tmp_path / "run", tmp_path / "bundle")
    int8 = {m.engine: m for m in bundle.manifest.models if m.precision == "int8"}
    assert set(int8) == {"onnxruntime", "openvino"}
    assert all(m.details["source"] == "qat" and m.candidate for m in int8.values())
    # never held to a budget: the runtime does not run a candidate
    assert Predictor(bundle).model.precision == "fp32"
    fp32_onnx = bundle.path_of(bundle.manifest.model("onnxruntime", "fp32")).stat().st_size
    assert bundle.path_of(int8["onnxruntime"]).stat().st_size * 3 < fp32_onnx  # int8 weights

    # Which candidate ships is decided by speed on the box's kernels: a set timer makes it the
    # same on every build host (ONNX Runtime's QAT graph slower than fp32, everything else
    # faster), and the build host is taken for a VNNI one so that the scheme is timed at all.
    qat_files = {bundle.path_of(m).read_bytes(): m.engine for m in int8.values()}

    def timer(engine: str, int8_path: Path, fp32_path: Path, inputs: object) -> Int8Speed:
        slower = qat_files.get(int8_path.read_bytes()) == "onnxruntime"
        speedup = 0.5 if slower else 2.0
        return Int8Speed(fp32_p50_ms=1.0, int8_p50_ms=1.0 / speedup, speedup=speedup, batch=1)

    monkeypatch.setattr("edgeft.quantize.bundle_quantize.int8_speed", timer)
    monkeypatch.setattr("edgeft.targets.int8_scheme.this_host", lambda: VNNI)
    out = quantize_bundle(
        bundle.root,
        tmp_path / "int8",
        # QAT keeps 8-bit weights: it is a candidate for the VNNI scheme, on any build host
        QuantizeConfig(calibration=16, max_accuracy_drop=100.0, targets=("x86-avx512-vnni",)),
        console=QUIET,
    )
    for engine in ("onnxruntime", "openvino"):
        entry = out.manifest.model(engine, "int8")
        first = entry.details["attempts"][0]
        assert first["setting"] == "qat" and first["error"] is None  # tried first, and fits
        # A 100-point budget takes the first candidate unless it runs slower than fp32: then
        # a faster one within budget wins.
        if engine == "openvino":
            assert entry.details["setting"] == "qat" and entry.details["speed"]["speedup"] == 2.0
        else:
            assert first["speed"]["speedup"] == 0.5
            assert entry.details["setting"] != "qat" and entry.details["speed"]["speedup"] == 2.0
        assert not entry.candidate and entry.targets == ["x86-avx512-vnni"]
    Bundle.load(out.root)

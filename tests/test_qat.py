"""Quantization-aware training end to end: run -> QAT weights -> int8 models in the bundle ->
the quantize step validates the QAT models instead of calibrating from scratch."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from edgeft.bundle import Bundle
from edgeft.export import export_bundle
from edgeft.quantize import QuantizeConfig, quantize_bundle
from edgeft.runtime import Predictor
from edgeft.train import Recipe, finetune
from edgeft.train.run_folder import QAT_CONFIG, QAT_MODEL
from tests.test_finetune import photos  # noqa: F401 - the shared tiny real-photo dataset

# The tiny test models run slower in int8 than in fp32 (fixed costs per operator outweigh the
# arithmetic), so these tests ship int8 anyway; test_budget_search.py tests the speed rule.

QUIET = Console(quiet=True)


def test_qat_run_exports_int8_models_that_quantize_keeps(photos: Path, tmp_path: Path) -> None:  # noqa: F811
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

    out = quantize_bundle(
        bundle.root,
        tmp_path / "int8",
        # QAT keeps 8-bit weights: it is a candidate for the VNNI scheme, on any build host
        QuantizeConfig(
            allow_slower_int8=True,
            calibration=16,
            max_accuracy_drop=100.0,
            targets=("x86-avx512-vnni",),
        ),
        console=QUIET,
    )
    for engine in ("onnxruntime", "openvino"):
        entry = out.manifest.model(engine, "int8")
        first = entry.details["attempts"][0]
        assert first["setting"] == "qat" and first["error"] is None  # tried first, and fits
        # A 100-point budget takes the first candidate, unless it runs slower than fp32 on this
        # host (timed only where the host runs the scheme's kernels): then a faster one wins.
        if first["speed"] is None or first["speed"]["speedup"] >= 1.0:
            assert entry.details["setting"] == "qat"
        else:
            assert entry.details["speed"]["speedup"] >= first["speed"]["speedup"]
        assert not entry.candidate and entry.targets == ["x86-avx512-vnni"]
    Bundle.load(out.root)

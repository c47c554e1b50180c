"""Text end to end on MiniLM: the built-in reviews, fine-tuning, export (tokenizer in the bundle,
dynamic sequence axis), the torch-free runtime on both engines, and int8 within a budget."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

from edgeft.bundle import Bundle
from edgeft.data import load_dataset
from edgeft.errors import EdgeftError
from edgeft.quantize import QuantizeConfig, quantize_bundle
from edgeft.runtime import Predictor
from edgeft.train import finetune
from edgeft.train.checkpoint import load_weights
from edgeft.zoo import get_model
from tests.conftest import text_recipe as _recipe
from tests.test_cli import run

# The tiny test models run slower in int8 than in fp32 (fixed costs per operator outweigh the
# arithmetic), so these tests ship int8 anyway; test_budget_search.py tests the speed rule.


def test_builtin_reviews_materialise_once_without_duplicates() -> None:
    dataset = load_dataset("rotten-tomatoes")
    sizes = {split: len(examples) for split, examples in dataset.splits.items()}
    assert dataset.kind == "text" and dataset.classes == ["fresh", "rotten"]
    assert sizes == {"train": 3404, "val": 729, "test": 730}
    texts = [e.item for examples in dataset.splits.values() for e in examples]
    assert len(set(texts)) == len(texts)
    again = load_dataset("rotten-tomatoes")
    assert again.fingerprints == dataset.fingerprints


def test_full_finetune_learns_tickets_and_keeps_its_tokenizer(text_run: Path) -> None:
    from edgeft.train.run_folder import METRICS

    metrics = json.loads((text_run / METRICS).read_text())
    assert metrics["test"]["accuracy"] >= 0.9, metrics["history"]
    assert (text_run / "tokenizer.json").is_file()
    recipe = json.loads((text_run / "recipe.json").read_text())
    assert recipe["lr_head"] == 1e-3 and recipe["lr_backbone"] == 1e-4  # text default, then given


def test_feature_extraction_trains_only_the_head(tickets: Path, tmp_path: Path) -> None:
    result = finetune(
        _recipe(tickets, strategy="feature-extraction", epochs=20, lr_head=1e-2), tmp_path / "fe"
    )
    assert result.metrics["trainable_params"] == 384 * 2 + 2
    assert result.metrics["test"]["accuracy"] >= 0.9, result.metrics["history"]


def test_export_runs_on_both_engines_like_torch_at_any_length(
    text_run: Path, text_bundle: Bundle
) -> None:
    manifest = text_bundle.manifest
    assert [(t.name, t.shape, t.dtype) for t in manifest.inputs] == [
        ("input_ids", (-1, -1), "int64"),
        ("attention_mask", (-1, -1), "int64"),
    ]
    assert "tokenizer.json" in manifest.files
    texts = ["invoice 88 was charged twice", "the old press jams", "refund please"]
    entry = get_model("minilm")
    model = entry.create(num_classes=2).eval()
    load_weights(model, text_run / "model.safetensors")
    for engine in ("onnxruntime", "openvino"):
        predictor = Predictor(text_bundle, engine=engine)
        inputs = predictor.encoder.encode(texts)
        assert inputs["attention_mask"][2].sum() < inputs["attention_mask"].shape[1]  # padded
        together = predictor.probabilities(inputs)
        with torch.no_grad():
            expected = model(*(torch.from_numpy(a) for a in inputs.values())).softmax(-1).numpy()
        assert np.abs(together - expected).max() < 1e-4, engine
        alone = np.concatenate(
            [predictor.probabilities(predictor.encoder.encode([t])) for t in texts]
        )
        assert np.abs(together - alone).max() < 1e-4, engine  # padding changes nothing
        labels = [p.label for p in predictor.predict(texts)]
        assert labels == ["billing", "machine", "billing"], engine


def test_text_int8_within_budget_on_both_engines(text_bundle: Bundle, tmp_path: Path) -> None:
    config = QuantizeConfig(
        allow_slower_int8=True, calibration="40", method="minmax", max_accuracy_drop=5.0
    )
    out = quantize_bundle(text_bundle.root, tmp_path / "int8", config, console=Console(quiet=True))
    fp32_size = (out.root / "model.onnx").stat().st_size
    for engine in ("onnxruntime", "openvino"):
        entry = out.manifest.model(engine, "int8")
        assert entry.details["val_drop_points"] <= 5.0
        files = [out.path_of(entry), out.path_of(entry).with_suffix(".bin")]
        size = sum(f.stat().st_size for f in files if f.is_file())
        assert size < fp32_size / 3, (engine, size, fp32_size)
        predictor = Predictor(out, engine=engine, precision="int8")
        assert predictor.predict(["please refund invoice 12"])[0].label == "billing"
    report = run("eval", str(out.root), "--split", "test", "--json")
    assert report.returncode == 0, report.stderr
    assert '"agreement"' in report.stdout


def test_text_and_image_mismatches_are_refused(tickets: Path, image_folder: Path) -> None:
    with pytest.raises(EdgeftError, match="text-classification model"):
        finetune(_recipe(image_folder), Path("never-written"))
    with pytest.raises(EdgeftError, match="image-classification model"):
        finetune(_recipe(tickets, model="mobilenet_v2"), Path("never-written"))
    with pytest.raises(EdgeftError, match="--qat is built for image models"):
        finetune(_recipe(tickets, qat=True), Path("never-written"))
    assert not Path("never-written").exists()

"""Fine-tuning on a tiny real-image dataset: every strategy, early stopping, resume, bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from skimage import data as skimage_data

from edgeft.errors import DatasetError, EdgeftError
from edgeft.train import Recipe, finetune
from edgeft.train import checkpoint as ckpt
from edgeft.zoo import get_model


def _crops(photo: np.ndarray, folder: Path, count: int, seed: int) -> None:
    """Random 96x96 crops of one real photo, flipped at random: a class that can be learned."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(count):
        top = rng.integers(0, photo.shape[0] - 96)
        left = rng.integers(0, photo.shape[1] - 96)
        crop = photo[top : top + 96, left : left + 96]
        Image.fromarray(crop[:, ::-1] if rng.random() < 0.5 else crop).save(folder / f"{i:02d}.png")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    _crops(skimage_data.chelsea(), root / "cat", 20, 1)
    _crops(skimage_data.coffee(), root / "coffee", 20, 2)
    return root


def _recipe(photos: Path, **changes: object) -> Recipe:
    settings = {
        "model": "mobilenet_v2",
        "data": str(photos),
        "epochs": 3,
        "batch_size": 8,
        "image_size": 64,
        "precision": "fp32",
        "augment": False,
    }
    return Recipe(**(settings | changes))


@pytest.mark.parametrize("strategy", ["feature-extraction", "full", "progressive"])
def test_each_strategy_learns_and_writes_the_run_folder(
    photos: Path, tmp_path: Path, strategy: str
) -> None:
    result = finetune(_recipe(photos, strategy=strategy, lr_head=1e-2), tmp_path / "run")
    metrics = result.metrics
    assert metrics["test"]["accuracy"] >= 0.8, metrics["history"]
    for name in (
        "model.safetensors",
        "best.safetensors",
        "recipe.json",
        "run.json",
        "metrics.json",
        "curves.png",
        "confusion.png",
        "train.log",
    ):
        assert (tmp_path / "run" / name).is_file(), name
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["labels"] == ["cat", "coffee"] and run["preprocessing"]["crop"] == [64, 64]
    assert set(run["dataset"]["fingerprints"]) == {"train", "val", "test"}
    assert metrics["test"]["confusion_matrix"] and set(metrics["test"]["per_class"]) == {
        "cat",
        "coffee",
    }
    trainable = [h["trainable_params"] for h in metrics["history"]]
    if strategy == "feature-extraction":
        assert trainable[0] == 1280 * 2 + 2  # only the new linear head
    if strategy == "full":
        assert trainable[0] == metrics["total_params"]


def test_progressive_thaws_from_the_top_when_validation_stalls(
    photos: Path, tmp_path: Path
) -> None:
    # lr 0: epoch 1 is the best; from epoch 2 on validation stalls and each epoch thaws a group
    result = finetune(
        _recipe(
            photos, strategy="progressive", lr_head=0.0, lr_backbone=0.0, epochs=4, patience=10
        ),
        tmp_path / "run",
    )
    trainable = [h["trainable_params"] for h in result.metrics["history"]]
    assert trainable[0] == trainable[1] < trainable[2] < trainable[3]
    assert "thawing features.17-18" in (tmp_path / "run" / "train.log").read_text()


def test_early_stopping_keeps_the_best_epoch(photos: Path, tmp_path: Path) -> None:
    result = finetune(
        _recipe(photos, lr_head=0.0, lr_backbone=0.0, epochs=10, patience=2), tmp_path / "r"
    )
    assert len(result.metrics["history"]) == 3  # epoch 1 best, then 2 without improvement
    assert result.metrics["best_epoch"] == 1


def test_interrupted_run_keeps_its_best_and_resumes(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save = ckpt.save_progress

    def save_then_interrupt(run_dir, model, optimizer, scheduler, state):  # type: ignore[no-untyped-def]
        save(run_dir, model, optimizer, scheduler, state)
        if state["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_progress", save_then_interrupt)
    with pytest.raises(EdgeftError, match=r"interrupted.*--resume"):
        finetune(_recipe(photos), tmp_path / "run")
    assert (tmp_path / "run" / "best.safetensors").is_file()
    monkeypatch.setattr(ckpt, "save_progress", save)
    result = finetune(_recipe(photos), tmp_path / "run", resume=True)
    assert [h["epoch"] for h in result.metrics["history"]] == [1, 2, 3]
    assert "resuming after epoch 1" in (tmp_path / "run" / "train.log").read_text()


def test_existing_run_is_never_overwritten(photos: Path, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    with pytest.raises(EdgeftError, match="already exists"):
        finetune(_recipe(photos), tmp_path / "run")
    with pytest.raises(EdgeftError, match="nothing to resume"):
        finetune(_recipe(photos), tmp_path / "run", resume=True)
    assert (tmp_path / "run" / "keep.txt").read_text() == "mine"


def test_corrupt_image_is_named_or_skipped(photos: Path, tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(photos, data)
    (data / "cat" / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DatasetError, match=r"zz_broken\.png.*--skip-bad"):
        finetune(_recipe(data, epochs=1), tmp_path / "run1")
    result = finetune(_recipe(data, epochs=1, skip_bad=True), tmp_path / "run2")
    assert len(result.metrics["skipped_files"]) == 1


def test_bad_recipes_are_refused() -> None:
    with pytest.raises(EdgeftError, match="unknown strategy"):
        Recipe(model="mobilenet_v2", data="elpv", strategy="lora")
    with pytest.raises(EdgeftError, match="precision"):
        Recipe(model="mobilenet_v2", data="elpv", precision="fp8")
    with pytest.raises(EdgeftError, match="from scratch with --strategy full"):
        Recipe(model="mobilenet_v2", data="elpv", strategy="feature-extraction", pretrained=False)


@pytest.mark.parametrize("pretrained", [True, False])
def test_from_scratch_starts_from_random_weights(
    photos: Path, tmp_path: Path, pretrained: bool
) -> None:
    # lr 0 keeps the starting weights: the pretrained stem, or the architecture's random init
    recipe = _recipe(photos, epochs=1, lr_head=0.0, lr_backbone=0.0, pretrained=pretrained)
    finetune(recipe, tmp_path / "run")
    stem = load_file(tmp_path / "run" / "model.safetensors")["features.0.0.weight"]
    reference = get_model("mobilenet_v2").create().state_dict()["features.0.0.weight"]
    assert torch.equal(stem, reference) == pretrained


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "expected"),
    [(False, False, None), (True, False, torch.bfloat16), (False, True, torch.bfloat16)],
)
def test_auto_precision_trains_in_bf16_only_where_the_cpu_computes_it(
    amx: bool, avx512_bf16: bool, expected: torch.dtype | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``precision="auto"`` on a CPU: bf16 autocast on AMX or AVX-512 bf16, fp32 elsewhere,
    whichever CPU runs the test."""
    from edgeft.train.finetune import _autocast_dtype

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    assert _autocast_dtype("auto", torch.device("cpu")) is expected
    assert _autocast_dtype("fp32", torch.device("cpu")) is None
    assert _autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16

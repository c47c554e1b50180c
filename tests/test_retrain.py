"""Retraining from a run on newly labelled data, then comparing candidate and production."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from edgeft.bundle import Bundle
from edgeft.cli import app
from edgeft.data import DatasetExtension, load_dataset
from edgeft.errors import DatasetError, EdgeftError
from edgeft.evaluation import compare_bundles
from edgeft.export import export_bundle
from edgeft.repository import ModelRepository
from edgeft.train import Recipe, finetune
from edgeft.zoo import get_model
from tests.conftest import make_image_folder

runner = CliRunner()
OLD = {"bad": 10, "ok": 10}  # split 7/2/1 per class
NEW = {"bad": 5, "ok": 1}  # bad: 4 train + 1 val; ok's single item trains


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("retrain")


@pytest.fixture(scope="module")
def new_data(root: Path) -> Path:
    return make_image_folder(root / "new", NEW, first_seed=1000)


@pytest.fixture(scope="module")
def old_run(root: Path) -> Path:
    recipe = Recipe(
        model="mobilenet_v2",
        data=str(make_image_folder(root / "old", OLD)),
        epochs=1,
        batch_size=8,
        image_size=64,
        precision="fp32",
        augment=False,
    )
    return finetune(recipe, root / "old-run").run_dir


@pytest.fixture(scope="module")
def retrained(old_run: Path, new_data: Path, root: Path) -> Path:
    recipe = Recipe.from_run(old_run, new_data, strategy="feature-extraction", lr_head=1e-2)
    return finetune(recipe, root / "retrained").run_dir


@pytest.fixture(scope="module")
def bundles(old_run: Path, retrained: Path, root: Path) -> tuple[Bundle, Bundle]:
    """(candidate, production): the retrained run's bundle and the old run's."""
    return export_bundle(retrained, root / "candidate"), export_bundle(old_run, root / "production")


def _dataset(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())["dataset"]


def test_retraining_keeps_the_old_test_split_and_grows_train_and_val(
    old_run: Path, retrained: Path, new_data: Path
) -> None:
    old, new = _dataset(old_run), _dataset(retrained)
    assert new["fingerprints"]["test"] == old["fingerprints"]["test"]
    assert new["sizes"] == {
        "train": old["sizes"]["train"] + 5,
        "val": old["sizes"]["val"] + 1,
        "test": old["sizes"]["test"],
    }
    assert new["split_recipe"]["new_items"]["sizes"] == {"train": 5, "val": 1}
    recipe = json.loads((retrained / "recipe.json").read_text())
    assert recipe["init_from"] == str(old_run) and recipe["data"] == str(new_data)
    assert recipe["strategy"] == "feature-extraction"  # given
    assert (recipe["image_size"], recipe["batch_size"]) == (64, 8)  # the old run's
    assert json.loads((retrained / "run.json").read_text())["init_from"] == str(old_run)
    # what export and compare reload: the same splits from the recorded dataset.json
    assert load_dataset(new["source"]).fingerprints == new["fingerprints"]


def test_the_model_starts_from_the_old_runs_weights(old_run: Path, retrained: Path) -> None:
    # feature extraction keeps the backbone frozen: it is the old run's, trained, not ImageNet's
    old, new = load_file(old_run / "model.safetensors"), load_file(retrained / "model.safetensors")
    backbone = [k for k in old if not k.startswith("classifier")]
    assert all(torch.equal(old[k], new[k]) for k in backbone)
    pretrained = get_model("mobilenet_v2").create().state_dict()
    assert not torch.equal(new["features.0.0.weight"], pretrained["features.0.0.weight"])


def test_copies_and_unknown_classes(old_run: Path, new_data: Path, tmp_path: Path) -> None:
    recorded = _dataset(old_run)
    old = load_dataset(recorded["source"])
    test_item, train_item = old.splits["test"][0], old.splits["train"][0]
    leak = make_image_folder(tmp_path / "leak", {"ok": 2}, first_seed=2000)
    shutil.copy(test_item.item, leak / "ok" / "copy-of-test.png")
    with pytest.raises(DatasetError, match=r"copies of the old test split.*copy-of-test\.png"):
        finetune(Recipe.from_run(old_run, leak), tmp_path / "run")
    assert not (tmp_path / "run").exists()

    unknown = make_image_folder(tmp_path / "unknown", {"dent": 2, "ok": 2}, first_seed=3000)
    with pytest.raises(DatasetError, match="classes dent are not among the model's labels"):
        DatasetExtension(recorded, str(unknown)).load("x", load_dataset)

    label = old.classes[train_item.label]
    same = make_image_folder(tmp_path / "same", {label: 3}, first_seed=4000)
    shutil.copy(train_item.item, same / label / "copy.png")
    extended = (
        DatasetExtension(recorded, str(same)).load("x", load_dataset).split_recipe["new_items"]
    )
    assert extended["dropped_copies"] == [str(same / label / "copy.png")]
    assert sum(extended["sizes"].values()) == 3

    other = next(c for c in old.classes if c != label)
    relabelled = make_image_folder(tmp_path / "relabelled", {other: 2}, first_seed=5000)
    shutil.copy(train_item.item, relabelled / other / "copy.png")
    with pytest.raises(DatasetError, match="labelled differently"):
        DatasetExtension(recorded, str(relabelled)).load("x", load_dataset)


def test_compare_scores_both_models_on_the_old_test_and_each_environment(
    bundles: tuple[Bundle, Bundle], new_data: Path, old_run: Path
) -> None:
    candidate, production = bundles
    assert candidate.manifest.acceptance is not None  # its dataset reloaded at export
    comparison = compare_bundles(candidate, production, [new_data])
    test, new = comparison.environments
    assert (test.name, test.items) == ("test", _dataset(old_run)["sizes"]["test"])
    assert (new.name, new.items) == ("new", sum(NEW.values()))
    assert set(new.candidate["recall"]) == set(NEW)
    for env in comparison.environments:
        for metric, before, after, delta in env.rows():
            assert delta == round(100 * (after - before), 2), metric
    blind = Bundle(candidate.root, replace(candidate.manifest, provenance={}))
    assert compare_bundles(blind, production).skipped == [
        {"environment": "test", "reason": "the candidate records no dataset"}
    ]
    relabelled = Bundle(production.root, replace(production.manifest, labels=["ok", "bad"]))
    with pytest.raises(EdgeftError, match="labels differ"):
        compare_bundles(candidate, relabelled)


def test_compare_command_prints_json_and_a_table_and_pushes_the_candidate(
    bundles: tuple[Bundle, Bundle], new_data: Path, tmp_path: Path
) -> None:
    args = ["compare", str(bundles[0].root), str(bundles[1].root), "--data", str(new_data)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [e["name"] for e in summary["environments"]] == ["test", "new"]
    assert set(summary["environments"][1]["delta_points"]["recall"]) == set(NEW)
    repo = tmp_path / "repo"
    result = runner.invoke(app, [*args, "--push", str(repo), "--name", "parts"])
    assert result.exit_code == 0, result.output
    assert "recall ok" in result.stdout and "parts version 1 pushed" in result.stdout
    assert ModelRepository(repo).resolve("parts", "candidate").version == 1


def test_finetune_init_from_on_the_command_line_keeps_the_runs_recipe(
    old_run: Path, new_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = ["finetune", "--init-from", str(old_run), "--out", str(out)]
    result = runner.invoke(app, [*args, "--data", str(new_data), "--lr-head", "0.005"])
    assert result.exit_code == 0, result.output
    recipe = json.loads((out / "recipe.json").read_text())
    old = json.loads((old_run / "recipe.json").read_text())
    assert recipe == old | {"lr_head": 0.005, "data": str(new_data), "init_from": str(old_run)}
    out.rename(tmp_path / "done")
    missing = runner.invoke(app, args)
    assert isinstance(missing.exception, EdgeftError) and "--data" in str(missing.exception)

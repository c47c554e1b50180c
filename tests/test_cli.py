"""The CLI as a user runs it: real subprocesses, exit codes, one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EDGEFT = [sys.executable, "-m", "edgeft"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"COLUMNS": "200"}
    return subprocess.run([*EDGEFT, *args], capture_output=True, text=True, env=env, timeout=300)


def test_models_lists_the_three_zoo_entries() -> None:
    result = run("models", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"mobilenet_v2", "efficientnet_lite0", "minilm"}
    assert 3.4e6 < rows["mobilenet_v2"]["params"] < 3.6e6
    assert rows["minilm"]["task"] == "text-classification"
    table = run("models")
    assert "efficientnet_lite0" in table.stdout and "224x224" in table.stdout


def test_data_inspect_prints_counts(image_folder: Path) -> None:
    result = run("data", "inspect", str(image_folder))
    assert result.returncode == 0, result.stderr
    assert "scratch" in result.stdout and "no problems found" in result.stdout
    summary = json.loads(run("data", "inspect", str(image_folder), "--json").stdout)
    assert summary["sizes"]["train"] == 28
    assert summary["sizes"]["val"] + summary["sizes"]["test"] == 12


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("data", "inspect", "/no/such/folder"), "no such file or folder"),
        (("data", "inspect", "EMPTY"), "no class folders"),
    ],
)
def test_user_errors_are_one_line_without_traceback(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    args = tuple(str(tmp_path) if a == "EMPTY" else a for a in args)
    result = run(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error:") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_export_then_predict_a_cat(tmp_path: Path) -> None:
    from skimage import data as skimage_data
    from skimage.io import imsave

    imsave(tmp_path / "chelsea.png", skimage_data.chelsea())
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    assert run("export", "mobilenet_v2", "--out", str(tmp_path / "b")).returncode == 0
    result = run("predict", str(tmp_path / "b"), str(tmp_path / "chelsea.png"), "--json")
    assert result.returncode == 0, result.stderr
    assert "cat" in json.loads(result.stdout)[0]["label"]
    bad = run("predict", str(tmp_path / "b"), str(tmp_path / "broken.jpg"))
    assert bad.returncode == 2 and "broken.jpg: not a readable image" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_finetune_from_the_command_line_and_refuse_to_overwrite(tmp_path: Path) -> None:
    from tests.conftest import make_image_folder

    data = make_image_folder(tmp_path / "data", {"ok": 8, "bad": 8})
    args = (
        "finetune",
        "--data",
        str(data),
        "--strategy",
        "feature-extraction",
        "--epochs",
        "1",
        "--image-size",
        "64",
        "--batch-size",
        "8",
        "--precision",
        "fp32",
        "--out",
        str(tmp_path / "run"),
    )
    result = run(*args)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["strategy"] == "feature-extraction" and len(metrics["history"]) == 1
    again = run(*args)
    assert (
        again.returncode == 2
        and "already exists" in again.stderr
        and "Traceback" not in again.stderr
    )

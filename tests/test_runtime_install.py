"""An edge box installs edgeft with no extras: that alone must predict from a bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image
from skimage import data as skimage_data

from edgeft.bundle import Bundle

REPO = Path(__file__).resolve().parents[1]


def test_a_runtime_only_install_predicts_without_torch(zoo_bundle: Bundle, tmp_path: Path) -> None:
    venv = tmp_path / "edge-box"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, str(REPO)], check=True, capture_output=True)
    python = str(venv / "bin" / "python")
    missing = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True)
    assert missing.returncode != 0 and "No module named 'torch'" in missing.stderr
    cat = tmp_path / "cat.png"
    Image.fromarray(skimage_data.chelsea()).save(cat)
    result = subprocess.run(
        [str(venv / "bin" / "edgeft"), "predict", str(zoo_bundle.root), str(cat), "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["label"] in {"tabby", "tiger cat", "Egyptian cat"}
    targets = subprocess.run(
        [str(venv / "bin" / "edgeft"), "targets", "--json"], capture_output=True, text=True,
        cwd=tmp_path,
    )  # fmt: skip
    assert targets.returncode == 0, targets.stderr
    assert "x86-avx512-vnni" in {t["name"] for t in json.loads(targets.stdout)}

"""An edge box installs edgeft with no extras: that alone must predict from a bundle."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from PIL import Image
from skimage import data as skimage_data

from edgeft.bundle import Bundle


def test_a_runtime_only_install_predicts_without_torch(
    zoo_bundle: Bundle, edge_box: Path, tmp_path: Path
) -> None:
    cat = tmp_path / "cat.png"
    Image.fromarray(skimage_data.chelsea()).save(cat)
    result = subprocess.run(
        [str(edge_box / "edgeft"), "predict", str(zoo_bundle.root), str(cat), "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["label"] in {"tabby", "tiger cat", "Egyptian cat"}
    targets = subprocess.run(
        [str(edge_box / "edgeft"), "targets", "--json"], capture_output=True, text=True,
        cwd=tmp_path,
    )  # fmt: skip
    assert targets.returncode == 0, targets.stderr
    assert "x86-avx512-vnni" in {t["name"] for t in json.loads(targets.stdout)}

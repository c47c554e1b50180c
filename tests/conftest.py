"""Shared fixtures: tiny real image folders and text tables made on the fly, and an isolated
EDGEFT_HOME so tests never touch the user's data folder."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(autouse=True, scope="session")
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGEFT_HOME", str(tmp_path_factory.mktemp("edgeft-home")))
    mp.setenv("HF_HUB_OFFLINE", "1")
    yield
    mp.undo()


def write_image(path: Path, seed: int, mode: str = "RGB", size: tuple[int, int] = (40, 32)) -> Path:
    """A small random image whose pixels differ by seed (so no two files are duplicates)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        pixels = rng.integers(0, 65535, size=size[::-1], dtype=np.uint16)
        Image.fromarray(pixels).save(path)
        return path
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 255, size=(*size[::-1], channels), dtype=np.uint8)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode=mode).save(path)
    return path


def make_image_folder(
    root: Path, counts: dict[str, int], suffix: str = ".png", first_seed: int = 0
) -> Path:
    """``root/<class>/*`` of distinct random images; give each folder its own ``first_seed``."""
    seed = first_seed
    for name, count in counts.items():
        for i in range(count):
            seed += 1
            write_image(root / name / f"{name}_{i:03d}{suffix}", seed)
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "parts", {"ok": 20, "scratch": 10, "dent": 10})


@pytest.fixture(scope="session")
def zoo_bundle(tmp_path_factory: pytest.TempPathFactory):  # -> edgeft.bundle.Bundle
    """The pretrained ImageNet MobileNetV2, exported once for every test that only reads it."""
    from edgeft.export import export_bundle

    return export_bundle("mobilenet_v2", tmp_path_factory.mktemp("zoo") / "mobilenet_v2")


@pytest.fixture(scope="session")
def edge_box(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with edgeft installed with no extras, as on an edge box (no torch): its bin/."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    venv = tmp_path_factory.mktemp("edge-box") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(repo)], check=True, capture_output=True
    )
    missing = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True)
    assert missing.returncode != 0 and "No module named 'torch'" in missing.stderr
    return venv / "bin"


# Two kinds of factory support ticket, each phrased many ways: learnable, but not by one word.
_TICKETS = {
    "machine": [
        "the {} press keeps jamming halfway through the shift",
        "spindle on the {} lathe vibrates and the parts come out rough",
        "conveyor {} stopped again and the motor smells burnt",
        "robot arm on line {} drops every third part",
        "coolant is leaking under the {} milling machine",
        "the {} welder trips its breaker whenever it starts",
        "hydraulic pressure on press {} falls after ten minutes",
        "sensor on the {} packer reads zero even with boxes present",
    ],
    "billing": [
        "invoice {} charges us twice for the same delivery",
        "please refund the late fee on account {}",
        "our {} payment was taken but the order shows unpaid",
        "the quote said {} euros but the bill is higher",
        "can you send a corrected invoice with our tax number {}",
        "credit note {} never reached our accounts team",
        "why did the subscription renew at the {} price",
        "the statement lists an order {} we never placed",
    ],
}
_FILLERS = ["first", "north", "old", "blue", "second", "small", "main", "new"]


@pytest.fixture(scope="session")
def tickets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tickets") / "tickets.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for label, phrases in _TICKETS.items():
            for phrase in phrases:
                for filler in _FILLERS:
                    writer.writerow([phrase.format(filler), label])
    return path


def text_recipe(tickets: Path, **changes: object):  # -> edgeft.train.Recipe
    from edgeft.train import Recipe

    settings = {"model": "minilm", "data": str(tickets), "batch_size": 8, "precision": "fp32"}
    return Recipe(**(settings | changes))


@pytest.fixture(scope="session")
def text_run(tickets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeft.train import finetune

    out = tmp_path_factory.mktemp("text-run") / "run"
    finetune(text_recipe(tickets, strategy="full", epochs=3, lr_backbone=1e-4), out)
    return out


@pytest.fixture(scope="session")
def text_bundle(text_run: Path, tmp_path_factory: pytest.TempPathFactory):  # -> Bundle
    from edgeft.export import export_bundle

    return export_bundle(text_run, tmp_path_factory.mktemp("text-bundle") / "bundle")


def part_image(rng: np.random.Generator, label: str, bright: float = 0.0) -> bytes:
    """A textured grey part; ``dent`` ones carry a dark blob. ``bright`` shifts the lighting
    (the line's change)."""
    pixels = rng.normal(120 + bright, 18, size=(48, 48))
    if label == "dent":
        y, x = rng.integers(12, 36, size=2)
        pixels[y - 6 : y + 6, x - 6 : x + 6] -= 70
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_parts(root: Path, per_class: int, seed: int, bright: float = 0.0) -> Path:
    rng = np.random.default_rng(seed)
    for label in ("dent", "ok"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (root / label / f"{seed}_{i:03d}.png").write_bytes(part_image(rng, label, bright))
    return root


@pytest.fixture(scope="session")
def parts_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeft.train import Recipe, finetune

    root = tmp_path_factory.mktemp("parts")
    data = write_parts(root / "data", 150, seed=1)
    recipe = Recipe(
        model="mobilenet_v2",
        data=str(data),
        strategy="feature-extraction",
        epochs=4,
        batch_size=16,
        image_size=64,
        precision="fp32",
    )
    finetune(recipe, root / "run")
    return root / "run"


@pytest.fixture(scope="session")
def parts_bundle(parts_run: Path):  # -> edgeft.bundle.Bundle
    from edgeft.export import export_bundle

    return export_bundle(parts_run, parts_run.parent / "bundle")

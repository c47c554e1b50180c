"""Tabulate fine-tuning runs (their metrics.json) side by side, with the command that made each.

    .venv/bin/python benchmarks/finetune_report.py RUN_DIR [RUN_DIR ...] --name elpv_finetune

Writes benchmarks/results/<name>.md and .json: strategy, test accuracy and macro-F1 (fp32, and
the QAT model's int8-simulated scores when the run has them), training time, trainable
parameters.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def _command(recipe: dict[str, Any], run: Path) -> str:
    flags = [f"--strategy {recipe['strategy']}", f"--epochs {recipe['epochs']}"]
    if recipe.get("qat"):
        flags.append(f"--qat --qat-images {recipe['qat_images']}")
    return f"edgeft finetune --model {recipe['model']} --data {recipe['data']} {' '.join(flags)} --out {run}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        metrics = json.loads((run / "metrics.json").read_text())
        recipe = json.loads((run / "recipe.json").read_text())
        row = {
            "run": str(run),
            "command": _command(recipe, run),
            "strategy": recipe["strategy"],
            "test_accuracy": metrics["test"]["accuracy"],
            "test_macro_f1": metrics["test"]["macro_f1"],
            "best_epoch": metrics["best_epoch"],
            "epochs_run": len(metrics["history"]),
            "training_seconds": metrics["training_seconds"],
            "trainable_params": metrics["trainable_params"],
        }
        if "qat" in metrics:
            row["qat"] = {
                "test_accuracy": metrics["qat"]["test"]["accuracy"],
                "test_macro_f1": metrics["qat"]["test"]["macro_f1"],
                "seconds": metrics["qat"]["seconds"],
                "images": metrics["qat"]["images"],
            }
        rows.append(row)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(rows, indent=2))
    lines = [
        "| strategy | test acc | macro-F1 | epochs (best) | train min | trainable | QAT test acc (int8-sim) | QAT min |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        qat = r.get("qat")
        lines.append(
            f"| {r['strategy']} | {r['test_accuracy']:.4f} | {r['test_macro_f1']:.4f} | "
            f"{r['epochs_run']} ({r['best_epoch']}) | {r['training_seconds'] / 60:.1f} | "
            f"{r['trainable_params']:,} | {qat['test_accuracy']:.4f} | {qat['seconds'] / 60:.1f} |"
            if qat
            else f"| {r['strategy']} | {r['test_accuracy']:.4f} | {r['test_macro_f1']:.4f} | "
            f"{r['epochs_run']} ({r['best_epoch']}) | {r['training_seconds'] / 60:.1f} | "
            f"{r['trainable_params']:,} | | |"
        )
    commands = "\n".join(f"    {r['command']}" for r in rows)
    (RESULTS / f"{args.name}.md").write_text(
        f"Commands:\n\n{commands}\n\n" + "\n".join(lines) + "\n"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()

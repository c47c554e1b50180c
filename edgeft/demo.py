"""``edgeft demo``: the mission on the built-in ELPV solar-cell defect data, as far as built.

Today: inspect the data, fine-tune MobileNetV2 by feature extraction (about a minute on two
cores), export fp32 ONNX + OpenVINO IR, quantize both to int8 under the 1-point accuracy budget,
and score the bundle's test split through the torch-free runtime on both engines. Benchmarking
and serving join it with the next issues.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from edgeft.data.elpv import LICENCE


def run_demo(workdir: Path, console: Console) -> None:
    from edgeft.data import inspect_dataset, load_dataset
    from edgeft.evaluation import evaluate_bundle
    from edgeft.export import export_bundle
    from edgeft.quantize import QuantizeConfig, quantize_bundle
    from edgeft.train import Recipe, finetune
    from edgeft.train.finetune import MODEL

    console.rule("edgeft demo: solar-cell defects (ELPV)")
    console.print(f"ELPV data: Deitsch et al., licence {LICENCE} (non-commercial).")
    dataset = load_dataset("elpv")
    for warning in inspect_dataset(dataset).warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    run_dir, fp32_dir, bundle_dir = workdir / "run", workdir / "fp32", workdir / "bundle"
    if (run_dir / MODEL).is_file():
        console.print(f"reusing the fine-tuned run in {run_dir}")
    else:
        recipe = Recipe(
            model="mobilenet_v2",
            data="elpv",
            strategy="feature-extraction",
            epochs=30,
            patience=6,
            lr_head=3e-3,
        )
        finetune(recipe, run_dir, resume=run_dir.exists(), console=console)
    export_bundle(run_dir, fp32_dir, overwrite=True)
    bundle = quantize_bundle(
        fp32_dir, bundle_dir, QuantizeConfig(), overwrite=True, console=console
    )
    with Progress(console=console, transient=True) as progress:
        results = evaluate_bundle(bundle, dataset, "test", "all", progress)
    test = dataset.splits["test"]
    table = Table(title=f"ELPV test split ({len(test)} cells), run through edgeft.runtime")
    for column in ("model", "accuracy", "macro-F1", "Δ acc pt", "size MB"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in results:
        delta = r.scores.get("accuracy_delta_points")
        table.add_row(
            f"{r.entry.engine} {r.entry.precision}",
            f"{r.scores['accuracy']:.4f}",
            f"{r.scores['macro_f1']:.4f}",
            "" if delta is None else f"{delta:+.2f}",
            f"{r.size_bytes / 1e6:.2f}",
        )
    console.print(table)
    example = test[0].item
    console.print(f"predict: .venv/bin/edgeft predict {bundle_dir} {example} --precision int8")

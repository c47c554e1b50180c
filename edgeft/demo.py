"""``edgeft demo``: the mission on the built-in ELPV solar-cell defect data, as far as built.

Today: inspect the data, fine-tune MobileNetV2 by feature extraction (about a minute on two
cores), export fp32 ONNX + OpenVINO IR into a bundle, and score the bundle's test split through
the torch-free runtime on both engines. int8 compression, benchmarking and serving join it with
the next issues.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgeft.data.elpv import LICENCE


def run_demo(workdir: Path, console: Console) -> None:
    from edgeft.data import inspect_dataset, load_dataset
    from edgeft.evaluation import classification_metrics
    from edgeft.export import export_bundle
    from edgeft.runtime import Predictor
    from edgeft.train import Recipe, finetune
    from edgeft.train.finetune import MODEL

    console.rule("edgeft demo: solar-cell defects (ELPV)")
    console.print(f"ELPV data: Deitsch et al., licence {LICENCE} (non-commercial).")
    dataset = load_dataset("elpv")
    for warning in inspect_dataset(dataset).warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    run_dir, bundle_dir = workdir / "run", workdir / "bundle"
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
    bundle = export_bundle(run_dir, bundle_dir, overwrite=True)
    test = dataset.splits["test"]
    table = Table(title=f"ELPV test split ({len(test)} cells), run through edgeft.runtime")
    for column in ("model", "accuracy", "macro-F1", "size MB"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for entry in bundle.manifest.models:
        predictor = Predictor(bundle, engine=entry.engine, precision=entry.precision)
        predictions = []
        for start in range(0, len(test), 64):
            batch = predictor.preprocess.batch([e.item for e in test[start : start + 64]])
            predictions.extend(predictor.probabilities(batch).argmax(1).tolist())
        scores = classification_metrics(
            [e.label for e in test], predictions, bundle.manifest.labels
        )
        size = sum(p.stat().st_size for p in bundle.path_of(entry).parent.glob("model.*")) / 1e6
        table.add_row(
            f"{entry.engine} {entry.precision}",
            f"{scores['accuracy']:.4f}",
            f"{scores['macro_f1']:.4f}",
            f"{size:.1f}",
        )
    console.print(table)
    example = test[0].item
    console.print(f"predict: .venv/bin/edgeft predict {bundle_dir} {example}")

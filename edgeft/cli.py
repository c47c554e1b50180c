"""The ``edgeft`` command: a thin typer layer over the Python API.

Each command parses arguments, calls one API function and prints its result; user errors
(``EdgeftError``) become one ``error:`` line and exit code 2, without a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edgeft.errors import EdgeftError

app = typer.Typer(
    help="Fine-tune, compress, benchmark and run pretrained models on edge boxes.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command()
def models(as_json: JsonFlag = False) -> None:
    """List the offline model zoo (parameters and size measured by building each model)."""
    from edgeft.zoo import ZOO, summarise

    rows = [summarise(name) for name in ZOO]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="edgeft model zoo")
    for column in ("name", "task", "params", "fp32 MB", "input", "weights (package)"):
        table.add_column(
            column, justify="right" if column in ("params", "fp32 MB") else "left", overflow="fold"
        )
    for r in rows:
        table.add_row(
            r["name"],
            str(r["task"]).removesuffix("-classification"),
            f"{r['params'] / 1e6:.2f} M",
            f"{r['fp32_mb']}",
            r["input"],
            r["weights"],
        )
    console.print(table)


@data_app.command("inspect")
def data_inspect(
    source: Annotated[
        str, typer.Argument(help="Image folder, CSV/JSONL file or folder, or 'elpv'.")
    ],
    seed: Annotated[int, typer.Option(help="Seed of the stratified split.")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Class counts per split, and warnings on imbalance, cross-split duplicates, unreadable files."""
    from edgeft.data import SPLITS, inspect_dataset, load_dataset

    report = inspect_dataset(load_dataset(source, seed=seed))
    dataset = report.dataset
    if as_json:
        summary = dataset.describe() | {
            "counts": report.counts,
            "warnings": report.warnings,
            "unreadable": report.unreadable,
        }
        print(json.dumps(summary, indent=2))
        return
    console.print(f"{dataset.source}: {dataset.kind} dataset, split {dataset.split_recipe}")
    table = Table()
    table.add_column("class")
    for split in SPLITS:
        table.add_column(split, justify="right")
    for name in [*dataset.classes, "total"]:
        cells = [
            str(
                sum(report.counts[s].values()) if name == "total" else report.counts[s].get(name, 0)
            )
            for s in SPLITS
        ]
        table.add_row(name, *cells, end_section=name == dataset.classes[-1])
    console.print(table)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if not report.warnings:
        console.print("[green]no problems found[/]")


@app.command()
def finetune(
    out: Annotated[Path, typer.Option("--out", help="Run folder to create (or continue).")],
    model: Annotated[str, typer.Option(help="Zoo name or torchvision:<arch>.")] = "mobilenet_v2",
    data: Annotated[str, typer.Option(help="Image folder or a built-in dataset.")] = "elpv",
    strategy: Annotated[
        str, typer.Option(help="feature-extraction, full or progressive.")
    ] = "full",
    epochs: int = 12,
    batch_size: int = 32,
    image_size: Annotated[
        int | None, typer.Option(help="Crop size (default: the model's).")
    ] = None,
    lr_head: float = 2e-3,
    lr_backbone: float = 5e-4,
    layer_decay: Annotated[float, typer.Option(help="Backbone lr factor per group.")] = 0.85,
    patience: Annotated[int, typer.Option(help="Early-stopping patience (epochs).")] = 4,
    precision: Annotated[str, typer.Option(help="auto, fp32 or bf16 autocast.")] = "auto",
    seed: int = 0,
    weights: Annotated[
        str | None, typer.Option(help="Weights file for torchvision:<arch>.")
    ] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip unreadable images.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")] = False,
) -> None:
    """Fine-tune a pretrained backbone on an image dataset (transfer learning)."""
    from edgeft.train import Recipe
    from edgeft.train import finetune as run_finetune

    recipe = Recipe(
        model=model,
        data=data,
        strategy=strategy,
        epochs=epochs,
        batch_size=batch_size,
        image_size=image_size,
        lr_head=lr_head,
        lr_backbone=lr_backbone,
        layer_decay=layer_decay,
        patience=patience,
        precision=precision,
        seed=seed,
        skip_bad=skip_bad,
        weights=weights,
    )
    result = run_finetune(recipe, out, resume=resume, console=console)
    console.print(f"run written to {result.run_dir} (metrics.json, curves.png, confusion.png)")


@app.command()
def export(
    source: Annotated[str, typer.Argument(help="A zoo model name (its pretrained ImageNet head).")],
    out: Annotated[Path, typer.Option("--out", help="The bundle folder to write.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing bundle at --out.")] = False,
) -> None:
    """Export fp32 ONNX (checked against torch) and OpenVINO IR into a bundle."""
    from edgeft.export import export_bundle

    bundle = export_bundle(source, out, overwrite=overwrite)
    for entry in bundle.manifest.models:
        size = bundle.path_of(entry).stat().st_size / 1e6
        console.print(f"{entry.engine:12s} {entry.precision}  {entry.path}  ({size:.1f} MB)")
    console.print(f"bundle written to {out}")


@app.command()
def predict(
    bundle: Annotated[Path, typer.Argument(help="A bundle folder.")],
    inputs: Annotated[list[Path], typer.Argument(help="Image files.")],
    top_k: Annotated[int, typer.Option("--top-k", help="How many classes to list.")] = 3,
    engine: Annotated[str, typer.Option(help="auto, onnxruntime or openvino.")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32 or int8.")] = "fp32",
    as_json: JsonFlag = False,
) -> None:
    """Label, confidence and top-k for each input, run as the edge box runs it."""
    from edgeft.runtime import Predictor

    predictor = Predictor(bundle, engine=engine, precision=precision)
    results = predictor.predict(inputs, top_k=top_k)
    if as_json:
        rows = [
            {
                "input": str(i),
                "label": r.label,
                "confidence": r.confidence,
                "top_k": [{"label": lb, "probability": p} for lb, p in r.top_k],
            }
            for i, r in zip(inputs, results, strict=True)
        ]
        print(json.dumps(rows, indent=2))
        return
    for path, result in zip(inputs, results, strict=True):
        ranked = ", ".join(f"{label} {p:.3f}" for label, p in result.top_k)
        console.print(
            f"{path}: [bold]{result.label}[/] ({result.confidence:.3f})  top-{top_k}: {ranked}"
        )


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo writes its outputs.")] = Path(
        "edgeft-demo"
    ),
) -> None:
    """The built-in solar-cell defect demo: everything edgeft can do so far, on ELPV."""
    from edgeft.demo import run_demo

    run_demo(workdir, console)


def main() -> None:
    """Console-script entry point: user errors are one line, not a traceback."""
    try:
        app()
    except EdgeftError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)

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

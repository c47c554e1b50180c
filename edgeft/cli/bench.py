"""Measuring on the box: target profiles, benchmark runs, the results database, the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgeft.cli import render
from edgeft.cli.app import JsonFlag, app, console
from edgeft.errors import EdgeftError

DbOption = Annotated[
    Path | None, typer.Option("--db", help="Results database (default: in the data folder).")
]


def parse_batches(text: str) -> tuple[int, ...]:
    """``--batch 1,8`` -> (1, 8)."""
    try:
        batches = tuple(int(b) for b in text.split(","))
    except ValueError:
        raise EdgeftError(f"--batch {text!r}: give sizes like 1,8") from None
    if not batches or min(batches) < 1:
        raise EdgeftError(f"--batch {text!r}: sizes must be positive")
    return batches


@app.command()
def targets(as_json: JsonFlag = False) -> None:
    """The target profiles (targets/*.toml) and whether this host can run each.

    Example: edgeft targets --json
    """
    from edgeft.targets import load_targets

    profiles = list(load_targets().values())
    if as_json:
        print(json.dumps([p.status() for p in profiles], indent=2))
    else:
        render.target_profiles(console, profiles)


@app.command()
def bench(
    bundle: Annotated[Path, typer.Argument(help="A bundle folder.")],
    target: Annotated[
        str | None, typer.Option(help="Target profile (default: the one this host matches).")
    ] = None,
    batch: Annotated[str, typer.Option(help="Batch sizes, comma-separated.")] = "1",
    duration: Annotated[
        float, typer.Option(help="Seconds of timing per model and batch.", min=0.1)
    ] = 5.0,
    cold_start: Annotated[
        bool, typer.Option("--cold-start/--no-cold-start", help="Measure cold start and memory.")
    ] = True,
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Also write the run as JSON (first: a failing database loses nothing)."
        ),
    ] = None,
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Latency (p50/p90/p99), throughput, cold start, memory and size of every model in a
    bundle on one target, appended to the results database.

    Example: edgeft bench bundles/elpv-int8 --batch 1,8 --duration 5 --out run.json
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from edgeft.bench.save import benchmark_and_save, run_json

    columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        result = benchmark_and_save(
            bundle, target, parse_batches(batch), duration, cold_start, json_out, db, progress
        )
    if as_json:
        print(run_json(result.run, result.saved.run_id))
    render.benchmark(console, bundle, result, as_json)


@app.command()
def results(
    db: DbOption = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write every row as CSV.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print every row (with samples) as JSON.")
    ] = False,
) -> None:
    """The benchmark runs stored in the results database, and their export.

    Example: edgeft results --json > rows.json
    """
    from edgeft.bench.store import ResultsStore

    store = ResultsStore(db)
    if csv_out is not None:
        store.write_csv(csv_out)
    if as_json:
        print(json.dumps(store.results(samples=True), indent=2))
    else:
        render.stored_runs(console, store.path, store.runs())


@app.command()
def report(
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write.")] = Path(
        "edgeft-report.html"
    ),
    run: Annotated[list[int] | None, typer.Option("--run", help="Run ids (default: all).")] = None,
    db: DbOption = None,
    screenshot: Annotated[
        Path | None, typer.Option(help="Also render the page to this PNG with headless Chromium.")
    ] = None,
) -> None:
    """A self-contained HTML page: tables and plots of stored benchmark runs.

    Example: edgeft report --out report.html --screenshot report.png
    """
    from edgeft.bench.report import report_stored_runs

    page, png = report_stored_runs(out, run or (), db, screenshot)
    console.print(f"report written to {page}")
    if png is not None:
        console.print(f"screenshot written to {png}")

"""``edgeft monitor``: drift and label-free accuracy from a box's prediction log, and the
inputs most worth labelling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgeft.cli import render
from edgeft.cli.app import JsonFlag, app, console
from edgeft.errors import EdgeftError


@app.command()
def monitor(
    log: Annotated[Path, typer.Argument(help="The prediction log (serve --log).")],
    bundle: Annotated[
        list[Path] | None,
        typer.Option(help="A bundle whose logged versions to analyse; repeatable."),
    ] = None,
    repo: Annotated[
        Path | None, typer.Option(help="Or a repository: every version's bundle.")
    ] = None,
    window: Annotated[
        str, typer.Option(help="Predictions per window (500) or a span of time (1h, 30m, 1d).")
    ] = "500",
    html: Annotated[
        Path | None, typer.Option(help="Also write a report with each figure over time.")
    ] = None,
    export_uncertain: Annotated[
        int | None,
        typer.Option(help="Write the N most informative kept inputs to --out for labelling."),
    ] = None,
    strategy: Annotated[
        str, typer.Option(help="least-confidence, margin, entropy, or diverse (covers the sketch).")
    ] = "least-confidence",
    out: Annotated[Path | None, typer.Option(help="Folder for --export-uncertain.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Drift and estimated accuracy per window of each logged model version, against its
    bundle's reference; exit code 1 when a figure left its band (for cron and alerting).

    Example: edgeft monitor predictions.sqlite --bundle edgeft-demo/bundle --window 1h
    --export-uncertain 50 --out to-label
    """
    from edgeft.monitor.log_review import LabellingRequest, review_log

    if (export_uncertain is None) != (out is None):
        raise EdgeftError("--export-uncertain N and --out DIR go together")
    labelling = None
    if export_uncertain is not None and out is not None:
        labelling = LabellingRequest(export_uncertain, out, strategy)
    review = review_log(log, bundle or [], repo, window, html, labelling)
    if as_json:
        exported = {"exported": review.exported.to_dict()} if review.exported else {}
        print(json.dumps(review.report.to_dict() | exported, indent=2))
    else:
        render.log_review(console, review)
    if review.report.drifted:
        raise typer.Exit(1)

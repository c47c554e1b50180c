"""Proving a bundle: validate on this box, evaluate on a split, compare a candidate with
production, predict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgeft.cli import render
from edgeft.cli.app import (
    AllowMismatchFlag,
    EngineOption,
    JsonFlag,
    PrecisionOption,
    app,
    console,
)


@app.command()
def validate(
    bundle: Annotated[Path, typer.Argument(help="A bundle folder.")],
    data: Annotated[
        str | None,
        typer.Option(help="A labelled image folder or text table (default: the acceptance set)."),
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option(help="Where to record the result (default: <bundle>.validation.json)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Prove a bundle on this box: every model it can run, scored here; int8 held to the budget.

    Exits 1 when an int8 model breaks the bundle's budget on this host.
    Example: edgeft validate runs/elpv-int8 --json
    """
    from edgeft.data.labelled_items import labelled_items
    from edgeft.runtime.validation import validate_and_record

    items = labelled_items(Path(data)) if data is not None else None
    report, recorded = validate_and_record(bundle, items, record)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        render.validation(console, report, recorded)
    if not report.passed:
        raise typer.Exit(1)


@app.command("eval")
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="A bundle folder.")],
    data: Annotated[
        str | None, typer.Option(help="Labelled data (default: the dataset the bundle records).")
    ] = None,
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    model: Annotated[str, typer.Option("--model", help="fp32, int8 or all.")] = "all",
    as_json: JsonFlag = False,
) -> None:
    """Accuracy, macro-F1, per-class scores, confusion matrix and fp32/int8 agreement.

    Example: edgeft eval bundles/elpv-int8 --split test
    """
    from rich.progress import Progress

    from edgeft.evaluation.bundle_eval import evaluate_recorded

    with Progress(console=console, transient=True) as progress:
        evaluated = evaluate_recorded(bundle, data, split, model, progress)
    if as_json:
        print(json.dumps([r.row() for r in evaluated.results], indent=2))
    else:
        render.evaluation(console, evaluated)


@app.command()
def compare(
    candidate: Annotated[Path, typer.Argument(help="The retrained bundle.")],
    production: Annotated[Path, typer.Argument(help="The bundle it would replace.")],
    data: Annotated[
        list[str] | None,
        typer.Option(
            help="Newly labelled data of one environment, repeatable: an image folder "
            "(<class>/<image>) or a CSV/JSONL text table."
        ),
    ] = None,
    precision: PrecisionOption = "auto",
    push: Annotated[
        Path | None,
        typer.Option(help="Then push the candidate into this repository as alias candidate."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Model name in --push (default: the bundle's folder name).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Candidate against production, side by side: accuracy, macro-F1 and per-class recall on
    the candidate's recorded test split and on each --data environment.

    Example: edgeft compare bundles/elpv-2 bundles/elpv --data new/line3 --push /srv/models
    --name elpv
    """
    from rich.progress import Progress

    from edgeft.evaluation.compare import review_candidate

    with Progress(console=console, transient=True) as progress:
        review = review_candidate(
            candidate, production, data or [], precision, progress, push=push, name=name
        )
    for choice in review.comparison.choices.values():
        render.model_choice(choice)
    if as_json:
        print(json.dumps(review.to_dict(), indent=2))
    else:
        render.candidate_review(console, review)


@app.command()
def predict(
    bundle: Annotated[Path, typer.Argument(help="A bundle folder.")],
    inputs: Annotated[list[str], typer.Argument(help="Image files (or texts, for a text model).")],
    top_k: Annotated[int, typer.Option("--top-k", help="How many classes to list.")] = 3,
    engine: EngineOption = "auto",
    precision: PrecisionOption = "auto",
    allow_mismatch: AllowMismatchFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Label, confidence and top-k for each input, run as the edge box runs it.

    Example: edgeft predict runs/elpv-int8 cell_0001.png cell_0002.png --json
    """
    from edgeft.runtime import Predictor

    predictor = Predictor(bundle, engine=engine, precision=precision, allow_mismatch=allow_mismatch)
    render.model_choice(predictor.choice)
    results = predictor.predict_arguments(inputs, top_k=top_k)
    if as_json:
        rows = [{"input": i} | r.to_dict() for i, r in zip(inputs, results, strict=True)]
        print(json.dumps(rows, indent=2))
    else:
        render.predictions(console, inputs, results, top_k)

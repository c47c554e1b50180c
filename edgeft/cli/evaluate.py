"""Proving a bundle: validate on this box, evaluate on a split, compare a candidate with
production, predict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from edgeft.cli import render
from edgeft.cli.app import (
    AllowMismatchFlag,
    EngineOption,
    JsonFlag,
    PrecisionOption,
    app,
    console,
)
from edgeft.errors import EdgeftError


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
    html: Annotated[
        Path | None,
        typer.Option(
            help="Anomaly bundles: also write a page with the score histogram and defect maps."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Accuracy, macro-F1, per-class scores, confusion matrix and fp32/int8 agreement; for an
    anomaly bundle image AUROC, pixel AUROC and PRO (with masks), F1, false-reject and escape
    rates at its threshold, per defect type and slice.

    Example: edgeft eval bundles/elpv-int8 --split test
    """
    from rich.progress import Progress

    from edgeft.evaluation.anomaly_eval import evaluate_anomaly_bundle
    from edgeft.evaluation.bundle_eval import evaluate_recorded

    anomaly = is_anomaly_bundle(bundle)
    if html is not None and not anomaly:
        raise EdgeftError("--html is for anomaly bundles; a classifier's page: edgeft report")
    with Progress(console=console, transient=True) as progress:
        run = evaluate_anomaly_bundle if anomaly else evaluate_recorded
        evaluated = run(bundle, data, split, model, progress)
    if html is not None:
        from edgeft.evaluation.anomaly_report import write_anomaly_report

        written = write_anomaly_report(evaluated, html)  # type: ignore[arg-type]
        # beside --json's output, not in it
        (Console(stderr=True) if as_json else console).print(f"report: {written}")
    if as_json:
        print(json.dumps([r.row() for r in evaluated.results], indent=2))
    elif anomaly:
        render.anomaly_evaluation(console, evaluated)  # type: ignore[arg-type]
    else:
        render.evaluation(console, evaluated)  # type: ignore[arg-type]


def is_anomaly_bundle(bundle: Path) -> bool:
    """Which task's command body runs (the full load, with hashes, comes in that body)."""
    from edgeft.bundle import Bundle
    from edgeft.bundle.manifest import ANOMALY_TASK

    return Bundle.load(bundle, verify=False).manifest.task == ANOMALY_TASK


@app.command()
def threshold(
    bundle: Annotated[Path, typer.Argument(help="An anomaly bundle.")],
    out: Annotated[Path, typer.Option("--out", help="The new bundle version to write.")],
    value: Annotated[
        float | None,
        typer.Option(help="The new threshold on the 0..1 score (0.5: the one chosen at fit)."),
    ] = None,
    false_reject: Annotated[
        float | None,
        typer.Option(help="Or: the share of the --good parts the threshold may flag."),
    ] = None,
    good: Annotated[
        Path | None, typer.Option(help="A folder of good parts, scored here, for --false-reject.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing bundle at --out.")] = False,
) -> None:
    """Move an anomaly bundle's threshold without re-exporting: a new bundle version with the
    same files and the new threshold (the old one and the rule recorded beside it).

    Example: edgeft threshold bundles/parts --false-reject 0.005 --good line3/good --out bundles/parts-2
    """
    from edgeft.runtime.anomaly.threshold import rethreshold_bundle

    written = rethreshold_bundle(bundle, out, value, false_reject, good, overwrite=overwrite)
    render.threshold_change(console, written)


@app.command()
def compare(
    candidate: Annotated[Path, typer.Argument(help="The retrained bundle.")],
    production: Annotated[Path, typer.Argument(help="The bundle it would replace.")],
    data: Annotated[
        list[str] | None,
        typer.Option(
            help="Newly labelled data of one environment, repeatable: an image folder "
            "(<class>/<image>), a CSV/JSONL text table, or an inspection folder (anomaly)."
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
    the candidate's recorded test split and on each --data environment (anomaly bundles: image
    AUROC, false-reject and escape, on test/ of the recorded and each --data folder).

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
    overlay: Annotated[
        Path | None,
        typer.Option(help="Anomaly bundles: write each image's defect map over it here (PNG)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Label, confidence and top-k for each input, run as the edge box runs it; for an anomaly
    bundle the score (0..1), the verdict at its threshold and, with --overlay, the defect map.

    Example: edgeft predict runs/elpv-int8 cell_0001.png cell_0002.png --json
    """
    from edgeft.runtime import Predictor

    if is_anomaly_bundle(bundle):
        from edgeft.runtime.anomaly.detector import AnomalyDetector

        detector = AnomalyDetector(
            bundle, engine=engine, precision=precision, allow_mismatch=allow_mismatch
        )
        render.model_choice(detector.choice)
        found = detector.detect_files([Path(i) for i in inputs], overlay)
        if as_json:
            print(
                json.dumps(
                    [{"input": i} | r.to_dict() for i, r in zip(inputs, found, strict=True)],
                    indent=2,
                )
            )
        else:
            render.anomaly_results(console, inputs, found)
        return
    predictor = Predictor(bundle, engine=engine, precision=precision, allow_mismatch=allow_mismatch)
    render.model_choice(predictor.choice)
    results = predictor.predict_arguments(inputs, top_k=top_k)
    if as_json:
        rows = [{"input": i} | r.to_dict() for i, r in zip(inputs, results, strict=True)]
        print(json.dumps(rows, indent=2))
    else:
        render.predictions(console, inputs, results, top_k)

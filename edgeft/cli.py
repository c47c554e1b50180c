"""The ``edgeft`` command: a thin typer layer over the Python API.

Each command parses arguments, calls one API function and prints its result; user errors
(``EdgeftError``) and what the machine refused (``OSError``: a missing folder, a full or
read-only disk; ``sqlite3.Error``: a damaged database) become one ``error:`` line and exit code
2, with a traceback only under ``--debug``.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from edgeft.errors import EdgeftError

if TYPE_CHECKING:
    from edgeft.bench import BenchmarkRun
    from edgeft.monitor.report import MonitorReport
    from edgeft.runtime.model_choice import ModelChoice

app = typer.Typer(
    help="Fine-tune, compress, benchmark and run pretrained models on edge boxes.\n\n"
    "Example: edgeft finetune --data elpv --out runs/elpv && edgeft export runs/elpv --out bundle",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
repo_app = typer.Typer(
    help="A model repository: numbered bundle versions per model, aliases, rollback.",
    no_args_is_help=True,
)
app.add_typer(repo_app, name="repo")
_DEBUG = "--debug"


@app.callback()
def _global_options(
    debug: Annotated[
        bool, typer.Option(_DEBUG, help="Show the traceback of an error, not just its line.")
    ] = False,
) -> None:
    """Options for every command (read by ``main`` before the command runs)."""


# Piped output (CI logs, files) gets room for the wide benchmark tables instead of 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
EngineOption = Annotated[str, typer.Option(help="auto, onnxruntime or openvino.")]
PrecisionOption = Annotated[
    str,
    typer.Option(help="auto (the int8 model that fits this host, else fp32), int8 or fp32."),
]
AllowMismatchFlag = Annotated[
    bool,
    typer.Option(
        "--allow-mismatch",
        help="With --precision int8: run an int8 model whose scheme does not fit this host.",
    ),
]


def _say_choice(choice: ModelChoice) -> None:
    """Which model runs and, when an int8 model was passed over, why (on stderr, so --json
    output stays clean)."""
    errors = Console(stderr=True)
    for note in choice.notes:
        errors.print(f"[yellow]note:[/] {note}", highlight=False)
    entry = choice.entry
    made_for = f" (made for {', '.join(entry.targets)})" if entry.targets else ""
    errors.print(f"[dim]running {entry.label}{made_for}[/]", highlight=False)


@app.command()
def models(as_json: JsonFlag = False) -> None:
    """List the offline model zoo (parameters and size measured by building each model).

    Example: edgeft models --json
    """
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
    """Class counts per split, and warnings on imbalance, cross-split duplicates, unreadable files.

    Example: edgeft data inspect path/to/images
    """
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
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Run folder to create (or continue).")],
    model: Annotated[
        str, typer.Option(help="Zoo name, torchvision:<arch> or a local Hugging Face folder.")
    ] = "mobilenet_v2",
    data: Annotated[
        str, typer.Option(help="Image folder, CSV/JSONL text table, or a built-in dataset.")
    ] = "elpv",
    strategy: Annotated[
        str, typer.Option(help="feature-extraction, full or progressive.")
    ] = "full",
    epochs: Annotated[int | None, typer.Option(help="Default: 12 image, 4 text.")] = None,
    batch_size: int = 32,
    image_size: Annotated[
        int | None, typer.Option(help="Crop size (default: the model's).")
    ] = None,
    crop_fraction: Annotated[
        float, typer.Option(help="Share of the resized image the centre crop keeps.")
    ] = 1.0,
    lr_head: Annotated[float | None, typer.Option(help="Default: 2e-3 image, 1e-3 text.")] = None,
    lr_backbone: Annotated[
        float | None, typer.Option(help="Default: 5e-4 image, 5e-5 text.")
    ] = None,
    layer_decay: Annotated[float, typer.Option(help="Backbone lr factor per group.")] = 1.0,
    patience: Annotated[int, typer.Option(help="Early-stopping patience (epochs).")] = 6,
    precision: Annotated[str, typer.Option(help="auto, fp32 or bf16 autocast.")] = "auto",
    seed: int = 0,
    weights: Annotated[
        str | None, typer.Option(help="Weights file for torchvision:<arch>.")
    ] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip unreadable images.")] = False,
    qat: Annotated[
        bool, typer.Option("--qat/--no-qat", help="Quantization-aware training afterwards.")
    ] = False,
    qat_images: Annotated[int, typer.Option(help="Training images the QAT pass sees.")] = 512,
    qat_lr: Annotated[float, typer.Option(help="QAT learning rate.")] = 2e-5,
    pretrained: Annotated[
        bool,
        typer.Option(
            "--pretrained/--from-scratch",
            help="Start from the pretrained weights, or from random ones (the baseline).",
        ),
    ] = True,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")] = False,
    init_from: Annotated[
        Path | None,
        typer.Option(
            help="Continue this run: its weights and recipe, its dataset extended by --data "
            "(newly labelled items join train and val; its test split stays as it was)."
        ),
    ] = None,
) -> None:
    """Fine-tune a pretrained backbone on an image or text dataset (transfer learning), then QAT.

    Retrain: edgeft finetune --init-from runs/elpv --data new-labels --out runs/elpv-2
    Data-parallel: torchrun --nproc-per-node 2 -m edgeft finetune --data elpv --out runs/elpv
    """
    from dataclasses import fields

    from edgeft.train import Recipe
    from edgeft.train import finetune as run_finetune

    knobs = {f.name: ctx.params[f.name] for f in fields(Recipe) if f.name in ctx.params}
    knobs.pop("init_from")
    if init_from is None:
        recipe = Recipe(**knobs)
    else:  # the run's recipe, changed by the knobs on the command line (typer's own click enum)
        given = {
            k: v for k, v in knobs.items() if ctx.get_parameter_source(k).name == "COMMANDLINE"
        }
        if "data" not in given:
            raise EdgeftError("--init-from needs --data: the newly labelled items")
        recipe = Recipe.from_run(init_from, **given)
    result = run_finetune(recipe, out, resume=resume, console=console)
    if result.written:  # under torchrun, by rank 0 alone
        console.print(f"run written to {result.run_dir} (metrics.json, curves.png, confusion.png)")


@app.command()
def export(
    source: Annotated[
        str, typer.Argument(help="A run folder from finetune, or a zoo model name (ImageNet head).")
    ],
    out: Annotated[Path, typer.Option("--out", help="The bundle folder to write.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing bundle at --out.")] = False,
    acceptance_size: Annotated[
        int,
        typer.Option(
            help="Validation items stored in the bundle for `edgeft validate` (0: none).", min=0
        ),
    ] = 256,
) -> None:
    """Export fp32 ONNX (checked against torch) and OpenVINO IR into a bundle, with an
    acceptance set from the run's validation split.

    Example: edgeft export runs/elpv --out bundles/elpv
    """
    from edgeft.export import export_bundle

    bundle = export_bundle(source, out, overwrite=overwrite, acceptance_size=acceptance_size)
    for entry in bundle.manifest.models:
        size = bundle.size_of(entry) / 1e6
        console.print(f"{entry.label:24s} {entry.path}  ({size:.1f} MB)")
    console.print(f"bundle written to {out}")


@app.command()
def quantize(
    bundle: Annotated[Path, typer.Argument(help="An fp32 bundle (from edgeft export).")],
    out: Annotated[Path, typer.Option("--out", help="The int8 bundle folder to write.")],
    engine: Annotated[str, typer.Option(help="onnxruntime, openvino or all.")] = "all",
    calibration: Annotated[
        str | None,
        typer.Option(help="A size, a recipe in calibration/, a .toml file or an image folder."),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            help="minmax, mean-minmax, entropy, percentile, or auto (try several). OpenVINO has "
            "NNCF's own ranges: minmax and mean-minmax both mean its per-item extremes averaged, "
            "entropy its histogram estimator, percentile its mean quantile."
        ),
    ] = "auto",
    max_accuracy_drop: Annotated[
        float, typer.Option(help="Budget: allowed validation accuracy drop, in points.")
    ] = 1.0,
    data: Annotated[
        str | None, typer.Option(help="Labelled data to validate on (default: the bundle's).")
    ] = None,
    max_float_layers: Annotated[
        int | None,
        typer.Option(help="Most layers the budget may keep in float (default: half of them)."),
    ] = None,
    qat: Annotated[
        bool, typer.Option("--qat/--no-qat", help="Try the bundle's QAT int8 models first.")
    ] = True,
    target: Annotated[
        str | None,
        typer.Option(
            help="Target profiles, comma-separated, or all-cpu: one int8 model per engine and "
            "int8 scheme they need (default: this host's scheme)."
        ),
    ] = None,
    budget_metric: Annotated[
        str, typer.Option(help="What the budget holds: accuracy, macro-f1 or recall:CLASS.")
    ] = "accuracy",
    allow_slower_int8: Annotated[
        bool,
        typer.Option(
            help="Ship an int8 model even where it runs slower than fp32 on this host (for its "
            "size); by default fp32 serves instead and the manifest says why."
        ),
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing bundle at --out.")] = False,
) -> None:
    """int8 models (ONNX Runtime QDQ, OpenVINO via NNCF) within an accuracy budget.

    Example: edgeft quantize runs/elpv-bundle --out runs/elpv-int8 --target x86-avx2-no-vnni,x86-avx512-vnni
    """
    from edgeft.backend_registry import ENGINES
    from edgeft.quantize import QuantizeConfig, quantize_bundle
    from edgeft.quantize.bundle_quantize import OVER_BUDGET

    config = QuantizeConfig(
        engines=ENGINES if engine == "all" else (engine,),
        targets=tuple(t.strip() for t in target.split(",") if t.strip()) if target else (),
        calibration=calibration,
        method=method,
        max_accuracy_drop=max_accuracy_drop,
        budget_metric=budget_metric,
        data=data,
        max_float_layers=max_float_layers,
        use_qat=qat,
        allow_slower_int8=allow_slower_int8,
    )
    result = quantize_bundle(bundle, out, config, overwrite=overwrite, console=console)
    table = Table(title=f"{out}: int8 on the validation split, through edgeft.runtime")
    columns = (
        "model",
        "for targets",
        "size MB",
        "val accuracy",
        "drop pt (95% CI)",
        "float layers",
        "speed vs fp32",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in columns[:2] else "right")

    for entry in result.manifest.models:
        details, val = entry.details, entry.metrics.get("val", {})
        interval = details.get("val_drop_interval")
        table.add_row(
            entry.label + (" (candidate)" if entry.candidate else ""),
            ", ".join(entry.targets),
            f"{result.size_of(entry) / 1e6:.2f}",
            f"{val['accuracy']:.4f}" if "accuracy" in val else "",
            f"{details['val_drop_points']:.2f}"
            + (f" ({interval['low']:.2f} to {interval['high']:.2f})" if interval else "")
            if "val_drop_points" in details
            else "",
            str(len(details["kept_float"])) if "kept_float" in details else "",
            f"{details['speed']['speedup']:.2f}x" if details.get("speed") else "",
        )
    console.print(table)
    for entry in result.manifest.models:
        for name, delta in entry.details.get("per_class_delta_points", {}).items():
            if delta["recall"] < 0:
                console.print(
                    f"{entry.label} loses on {name}: recall {delta['recall']:+.2f} pt, "
                    f"F1 {delta['f1']:+.2f} pt"
                )
    for failure in result.manifest.provenance.get("int8_failures", []):
        console.print(
            f"[red]not written:[/] {failure['engine']} {failure['scheme']} int8, "
            f"{failure.get('why', OVER_BUDGET)}; to accept its best candidate: "
            f"{failure['command']}",
            highlight=False,
        )
    console.print(f"bundle written to {out}")


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
    from edgeft.bundle import Bundle
    from edgeft.runtime.validation import validate_bundle, write_validation_record

    labelled = None
    if data is not None:
        from edgeft.data.labelled_items import labelled_items

        labelled = labelled_items(Path(data))
    report = validate_bundle(Bundle.load(bundle), labelled)
    written = write_validation_record(report, record)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        host = report.host
        table = Table(
            title=f"{bundle} on this host ({host['cpu']}, {', '.join(host['flags'])}): "
            f"{report.data}, {report.items} items"
        )
        columns = ("model", "accuracy (95% CI)", "macro-F1", "vs fp32 here", "drop pt (95% CI)",
                   "budget", "since build", "")  # fmt: skip
        for column in columns:
            table.add_column(column, justify="left" if column == "model" else "right")
        for m in report.models:
            acc, drop, recorded = m.scores, m.drop, m.recorded or {}
            table.add_row(
                m.model,
                f"{acc['accuracy']:.4f} ({acc['accuracy_interval'][0]:.3f}-"
                f"{acc['accuracy_interval'][1]:.3f})",
                f"{acc['macro_f1']:.4f}",
                f"{m.agreement_with_fp32:.1%}" if m.agreement_with_fp32 is not None else "",
                f"{drop['drop']:.2f} ({drop['low']:.2f} to {drop['high']:.2f})" if drop else "",
                f"{m.budget_points:.2f} {m.budget_metric}" if m.budget_points is not None else "",
                f"{recorded['accuracy_change_points']:+.2f} pt, "
                f"{recorded['agreement_with_recorded']:.1%} same"
                if recorded
                else "",
                "[green]pass[/]" if m.passed else "[red]FAIL[/]",
            )
        console.print(table)
        for skipped in report.skipped:
            console.print(f"skipped {skipped['model']}: {skipped['reason']}", highlight=False)
        for failure in report.failures():
            console.print(f"[red]fail:[/] {failure}", highlight=False)
        console.print(f"recorded in {written}")
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

    from edgeft.bundle import Bundle
    from edgeft.data import SPLITS
    from edgeft.evaluation import evaluate_bundle
    from edgeft.evaluation.bundle_eval import recorded_dataset
    from edgeft.evaluation.slices import slice_table

    if split not in SPLITS:
        raise EdgeftError(f"--split must be one of {', '.join(SPLITS)}")
    loaded = Bundle.load(bundle)
    dataset = recorded_dataset(loaded, data)
    if dataset is None:
        raise EdgeftError(f"{bundle} records no dataset; pass --data")
    with Progress(console=console, transient=True) as progress:
        results = evaluate_bundle(loaded, dataset, split, model, progress)
    if as_json:
        print(json.dumps([r.row() for r in results], indent=2))
        return
    table = Table(title=f"{bundle} on {dataset.source} {split} ({results[0].scores['examples']})")
    columns = ("model", "size MB", "accuracy", "macro-F1", "Δ acc pt", "agreement")
    for column in columns:
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in results:
        s = r.scores
        table.add_row(
            r.entry.label + (" (candidate)" if r.entry.candidate else ""),
            f"{r.size_bytes / 1e6:.2f}",
            f"{s['accuracy']:.4f}",
            f"{s['macro_f1']:.4f}",
            f"{s['accuracy_delta_points']:+.2f}" if "accuracy_delta_points" in s else "",
            f"{s['agreement']:.4f}" if "agreement" in s else "",
        )
    console.print(table)
    per_class = Table(title="per class (precision / recall / F1)")
    per_class.add_column("class")
    for r in results:
        per_class.add_column(r.entry.label, justify="right")
    for name in loaded.manifest.labels:
        cells = [r.scores["per_class"][name] for r in results]
        per_class.add_row(
            name, *(f"{c['precision']:.3f} / {c['recall']:.3f} / {c['f1']:.3f}" for c in cells)
        )
    console.print(per_class)
    sliced = slice_table(
        f"accuracy per slice ({dataset.source}'s metadata.csv)",
        [(r.entry.label, r.scores) for r in results],
    )
    if sliced is not None:
        console.print(sliced)


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

    from edgeft.evaluation import compare_bundles, push_candidate

    if name is not None and push is None:
        raise EdgeftError("--name names the model in --push's repository; pass --push too")
    with Progress(console=console, transient=True) as progress:
        comparison = compare_bundles(candidate, production, data or [], precision, progress)
    for choice in comparison.choices.values():
        _say_choice(choice)
    pushed = push_candidate(candidate, push, name) if push is not None else None
    if as_json:
        summary = comparison.to_dict()
        if pushed is not None:
            summary["pushed"] = {"model": pushed.model, "version": pushed.version}
        print(json.dumps(summary, indent=2))
        return
    table = Table(title=f"{candidate} (candidate) vs {production} (production)")
    for column in ("environment", "items", "metric", "production", "candidate", "Δ pt"):
        table.add_column(column, justify="right" if column in ("items", "Δ pt") else "left")
    for env in comparison.environments:
        rows = env.rows()
        for i, (metric, before, after, delta) in enumerate(rows):
            colour = "green" if delta > 0 else "red" if delta < 0 else "dim"
            table.add_row(
                env.name if i == 0 else "",
                str(env.items) if i == 0 else "",
                metric,
                f"{before:.4f}",
                f"{after:.4f}",
                f"[{colour}]{delta:+.2f}[/]",
                end_section=i == len(rows) - 1,
            )
    console.print(table)
    for skipped in comparison.skipped:
        console.print(f"skipped {skipped['environment']}: {skipped['reason']}", highlight=False)
    if pushed is not None:
        console.print(
            f"{pushed.model} version {pushed.version} pushed to {push}, alias candidate",
            highlight=False,
        )


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
    _say_choice(predictor.choice)
    is_text = predictor.bundle.manifest.task == "text-classification"
    results = predictor.predict(inputs if is_text else [Path(i) for i in inputs], top_k=top_k)
    if as_json:
        rows = [
            {
                "input": i,
                "label": r.label,
                "confidence": r.confidence,
                "top_k": [{"label": lb, "probability": p} for lb, p in r.top_k],
            }
            for i, r in zip(inputs, results, strict=True)
        ]
        print(json.dumps(rows, indent=2))
        return
    for item, result in zip(inputs, results, strict=True):
        ranked = ", ".join(f"{label} {p:.3f}" for label, p in result.top_k)
        console.print(
            f"{item}: [bold]{result.label}[/] ({result.confidence:.3f})  top-{top_k}: {ranked}",
            highlight=False,
        )


@app.command()
def serve(
    bundle: Annotated[Path, typer.Argument(help="A bundle folder, or a repository folder.")],
    host: Annotated[str, typer.Option(help="Address to bind; other than loopback needs care.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    grpc_port: Annotated[
        int | None,
        typer.Option(help="Also speak v2 gRPC on this port (Triton's is 8001; needs grpcio)."),
    ] = None,
    canary: Annotated[
        list[str] | None,
        typer.Option(help="NAME@VERSION:PERCENT: that share of NAME's requests (repository only)."),
    ] = None,
    shadow: Annotated[
        list[str] | None,
        typer.Option(help="NAME@VERSION: run it on a copy of NAME's v2 requests and compare."),
    ] = None,
    engine: EngineOption = "auto",
    precision: PrecisionOption = "auto",
    allow_mismatch: AllowMismatchFlag = False,
    validate: Annotated[
        bool,
        typer.Option(
            "--validate", help="Run `edgeft validate` on the model first; not ready if it fails."
        ),
    ] = False,
    model_name: Annotated[
        str | None, typer.Option(help="Name in /v2/models/NAME (default: the bundle folder's).")
    ] = None,
    max_batch: Annotated[int, typer.Option(help="Largest dynamic batch.", min=1)] = 8,
    max_wait_ms: Annotated[
        float, typer.Option(help="How long a lone request waits for company.", min=0)
    ] = 0.0,
    max_request_mb: Annotated[float, typer.Option(help="Largest request body.", min=0.001)] = 16,
    max_queue: Annotated[
        int, typer.Option(help="Items that may wait for the engine; past it, 503 at once.", min=1)
    ] = 64,
    queue_timeout_s: Annotated[
        float, typer.Option(help="Longest wait in the queue before a 503.", min=0.001)
    ] = 10.0,
    max_connections: Annotated[
        int, typer.Option(help="Open connections at once; past it, 503.", min=1)
    ] = 64,
    body_timeout_s: Annotated[
        float, typer.Option(help="Longest time a request body may take to arrive (408).", min=0.1)
    ] = 30.0,
    threads: Annotated[int | None, typer.Option(help="Engine threads (default: all).")] = None,
    target: Annotated[
        str | None, typer.Option(help="Engine settings from a target profile this host matches.")
    ] = None,
    token_env: Annotated[
        str | None,
        typer.Option(help="Name of an environment variable holding a bearer token to require."),
    ] = None,
    calibrated: Annotated[
        bool,
        typer.Option("--calibrated", help="Answer with temperature-scaled probabilities."),
    ] = False,
    log: Annotated[
        Path | None,
        typer.Option(help="Prediction log (SQLite): ids in responses, /v1/feedback, drift."),
    ] = None,
    log_max_rows: Annotated[
        int, typer.Option(help="Rows kept; the oldest rotate out.", min=100)
    ] = 1_000_000,
    log_max_mb: Annotated[float, typer.Option(help="Log database size cap.", min=1)] = 2048,
    keep_below: Annotated[
        float, typer.Option(help="Keep every input whose confidence is under this.", min=0, max=1)
    ] = 0.7,
    keep_share: Annotated[
        float, typer.Option(help="Share of the other inputs kept as a sample.", min=0, max=1)
    ] = 0.02,
    keep_max_mb: Annotated[
        float, typer.Option(help="Disk cap for kept inputs; past it none are kept.", min=0)
    ] = 1024,
    monitor_window: Annotated[
        int, typer.Option(help="Predictions per window the server monitors.", min=10)
    ] = 500,
    monitor_interval_s: Annotated[
        float, typer.Option(help="How often the server re-analyses its latest window.", min=0.1)
    ] = 60.0,
) -> None:
    """Serve a bundle, or every model of a repository, over HTTP: KServe v2 (/v2/...), /v1
    uploads, /metrics, a status page at /. A repository's models follow their production
    aliases (hot swap). With --log, every prediction is logged (its id comes back in the
    response), operators post labels to /v1/feedback, and drift figures appear in /metrics.

    Example: edgeft serve edgeft-demo/bundle --log predictions.sqlite"""
    import os

    from edgeft.monitor.prediction_log import LogLimits
    from edgeft.runtime import Predictor
    from edgeft.serve import ServerConfig
    from edgeft.serve import serve as run_server
    from edgeft.serve.server import default_model_name

    token = None
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            raise EdgeftError(f"--token-env {token_env}: that environment variable is empty")
    from edgeft.repository import ModelRepository, is_repository
    from edgeft.serve.traffic import parse_side_version
    from edgeft.targets import resolve_target

    profile = resolve_target(target) if target else None

    def open_predictor(path: Path) -> Predictor:
        predictor = Predictor(
            path,
            engine,
            precision,
            threads=threads,
            target=profile,
            allow_mismatch=allow_mismatch,
            calibrated=calibrated,
        )
        _say_choice(predictor.choice)
        return predictor

    repository = ModelRepository(bundle) if is_repository(bundle) else None
    config = ServerConfig(
        model_name=model_name or default_model_name(bundle),
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_request_bytes=int(max_request_mb * 1024 * 1024),
        max_queue=max_queue,
        queue_timeout_s=queue_timeout_s,
        max_connections=max_connections,
        body_timeout_s=body_timeout_s,
        token=token,
        validate=validate,
        grpc_address=f"{host}:{grpc_port}" if grpc_port else None,
        side_versions=tuple(
            [("canary", parse_side_version(c, canary=True)) for c in canary or []]
            + [("shadow", parse_side_version(s, canary=False)) for s in shadow or []]
        ),
        calibrated=calibrated,
        log=str(log) if log else None,
        log_limits=LogLimits(
            max_rows=log_max_rows,
            max_bytes=int(log_max_mb * 1024**2),
            max_input_bytes=int(keep_max_mb * 1024**2),
            keep_below=keep_below,
            keep_share=keep_share,
        ),
        monitor_window=monitor_window,
        monitor_interval_s=monitor_interval_s,
    )
    if config.side_versions and repository is None:
        raise EdgeftError("--canary and --shadow name versions: serve a repository")
    if repository is not None:
        names = ", ".join(repository.models()) or "none yet"
        console.print(
            f"serving repository {bundle} ({names}) on http://{host}:{port}  "
            "v2: /v2/models/NAME/infer, following its production aliases",
            highlight=False,
        )
        run_server(repository, config, host=host, port=port, factory=open_predictor)
        return
    predictor = open_predictor(bundle)
    console.print(
        f"serving {config.model_name} ({predictor.model.label}) on "
        f"http://{host}:{port}  v2: /v2/models/{config.model_name}/infer  upload: /v1/predict",
        highlight=False,
    )
    run_server(predictor, config, host=host, port=port)


@app.command()
def targets(as_json: JsonFlag = False) -> None:
    """The target profiles (targets/*.toml) and whether this host can run each.

    Example: edgeft targets --json
    """
    from edgeft.targets import load_targets

    profiles = load_targets()
    rows = []
    for p in profiles.values():
        why_not = p.mismatches()
        rows.append(
            {
                "name": p.name,
                "description": p.description,
                "engines": list(p.engines),
                "int8_scheme": p.quantization,
                "runs_here": not why_not,
                "why_not": why_not,
                "file": str(p.path),
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="edgeft targets")
    for column in ("name", "engines", "int8 act x weights", "runs here"):
        table.add_column(column, overflow="fold")
    for row in rows:
        scheme = row["int8_scheme"]
        table.add_row(
            row["name"],
            ", ".join(row["engines"]),
            f"{scheme.get('activations', '?')} x {scheme.get('weights', 'int8')}"
            + (" (7-bit)" if scheme.get("reduce_range") else ""),
            "[green]yes[/]" if row["runs_here"] else f"[dim]no: {'; '.join(row['why_not'])}[/]",
        )
    console.print(table)


def _batches(text: str) -> tuple[int, ...]:
    try:
        batches = tuple(int(b) for b in text.split(","))
    except ValueError:
        raise EdgeftError(f"--batch {text!r}: give sizes like 1,8") from None
    if not batches or min(batches) < 1:
        raise EdgeftError(f"--batch {text!r}: sizes must be positive")
    return batches


DbOption = Annotated[
    Path | None, typer.Option("--db", help="Results database (default: in the data folder).")
]


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

    from edgeft.bench import ResultsStore, benchmark_bundle
    from edgeft.bench.run import slower_int8
    from edgeft.bundle import Bundle
    from edgeft.targets import resolve_target

    profile = resolve_target(target)
    loaded = Bundle.load(bundle)
    columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        run = benchmark_bundle(
            loaded, profile, _batches(batch), duration, processes=cold_start, progress=progress
        )
    for skipped in run.skipped:
        console.print(f"skipped {skipped['model']}: {skipped['reason']}", highlight=False)
    # The JSON file first: a locked or broken database must not lose a run minutes long.
    written_json = json_out if json_out and _write_run_json(json_out, run, None) else None
    store = ResultsStore(db)
    run_id: int | None = None
    not_stored: EdgeftError | None = None
    try:
        run_id = store.add(run)
    except EdgeftError as exc:
        not_stored = exc
    if run_id is not None and written_json is not None:
        _write_run_json(written_json, run, run_id)  # now naming the run's id in the database
    notes = Console(stderr=True) if as_json else console
    if as_json:
        print(json.dumps(run.to_dict() | {"run_id": run_id}, indent=2))
    else:
        _print_bench_table(bundle, profile.name, run)
    for warning in slower_int8(run.latency_rows()):
        notes.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if not_stored is None:
        notes.print(f"run {run_id} stored in {store.path}")
    elif written_json is not None:
        Console(stderr=True).print(
            f"[yellow]warning:[/] {not_stored}. The run is not in the database; "
            f"{written_json} holds it.",
            highlight=False,
        )
    else:
        raise EdgeftError(f"the run was not saved: {not_stored}")


def _print_bench_table(bundle: Path, target: str, run: BenchmarkRun) -> None:
    table = Table(title=f"{bundle} on {target} ({run.host['cpu']}, {run.host['cores']} cores)")
    headers = ("model", "batch", "p50 ms", "p90 ms", "p99 ms", "items/s", "tput mode/s",
               "cold start ms", "peak MB", "size MB", "val acc")  # fmt: skip
    for column in headers:
        table.add_column(column, justify="left" if column == "model" else "right")
    for model in run.models:
        for size, stats in model.latency.items():
            table.add_row(
                model.label, str(size), f"{stats.p50_ms:.2f}", f"{stats.p90_ms:.2f}",
                f"{stats.p99_ms:.2f}", f"{stats.throughput:.0f}",
                f"{model.throughput_mode_ips:.0f}" if model.throughput_mode_ips else "-",
                f"{model.cold_start_ms:.0f}" if model.cold_start_ms else "-",
                f"{model.peak_rss_mb:.0f}" if model.peak_rss_mb else "-",
                f"{model.size_mb:.2f}",
                f"{model.accuracy:.1%}" if model.accuracy is not None else "-",
            )  # fmt: skip
    console.print(table)


def _write_run_json(path: Path, run: BenchmarkRun, run_id: int | None) -> bool:
    """Replace ``path`` atomically with the run (``run_id`` null until the database has it);
    False, with a warning, where it cannot be written, so the database can still keep the run."""
    from edgeft.atomic import write_text_atomically

    try:
        write_text_atomically(path, json.dumps(run.to_dict() | {"run_id": run_id}, indent=2) + "\n")
    except OSError as exc:
        Console(stderr=True).print(
            f"[yellow]warning:[/] could not write {path}: {exc}", highlight=False
        )
        return False
    return True


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
    from edgeft.atomic import write_text_atomically
    from edgeft.bench.store import ResultsStore, to_csv

    store = ResultsStore(db)
    if csv_out is not None:
        write_text_atomically(csv_out, to_csv(store.results()))
    if as_json:
        print(json.dumps(store.results(samples=True), indent=2))
        return
    table = Table(title=f"benchmark runs in {store.path}")
    for column in ("id", "created", "target", "cpu", "bundle", "rows"):
        table.add_column(column, overflow="fold")
    for run in store.runs():
        table.add_row(*(str(run[k]) for k in ("id", "created", "target", "cpu", "bundle", "rows")))
    console.print(table)


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
    from edgeft.bench.report import screenshot as render
    from edgeft.bench.report import write_report
    from edgeft.bench.store import ResultsStore

    rows = ResultsStore(db).results(run or (), samples=True)
    page = write_report(rows, out)
    console.print(f"report written to {page}")
    if screenshot is not None:
        console.print(f"screenshot written to {render(page, screenshot)}")


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo writes its outputs.")] = Path(
        "edgeft-demo"
    ),
    quick: Annotated[
        bool, typer.Option(help="Feature extraction and short timings: a few minutes.")
    ] = False,
) -> None:
    """The built-in solar-cell defect demo: fine-tune, compress, evaluate, benchmark, report.

    Example: edgeft demo --quick
    """
    from edgeft.demo import run_demo

    run_demo(workdir, console, quick=quick)


RepoArgument = Annotated[Path, typer.Argument(help="A repository folder.")]
ModelArgument = Annotated[str, typer.Argument(help="A model name in the repository.")]
AliasOption = Annotated[str, typer.Option(help="The alias to move.")]


@repo_app.command("push")
def repo_push(
    bundle: Annotated[Path, typer.Argument(help="A bundle folder.")],
    repo: Annotated[Path, typer.Argument(help="A repository folder (created if missing).")],
    name: Annotated[
        str | None, typer.Option(help="Model name (default: the bundle's folder name).")
    ] = None,
    no_validate: Annotated[
        bool, typer.Option("--no-validate", help="Skip `edgeft validate` on this host.")
    ] = False,
) -> None:
    """Copy a bundle into the repository as the model's next version (hashes checked, validated
    on this host). Example: edgeft repo push bundles/elpv-int8 /srv/models --name elpv"""
    from edgeft.repository import ModelRepository

    version = ModelRepository(repo, create=True).push(bundle, name, validate=not no_validate)
    console.print(f"{version.model} version {version.version} at {version.path}", highlight=False)


@repo_app.command("list")
def repo_list(repo: RepoArgument, as_json: JsonFlag = False) -> None:
    """Every model, its versions and the aliases pointing at them.
    Example: edgeft repo list /srv/models"""
    from edgeft.repository import ModelRepository

    repository = ModelRepository(repo)
    aliases = repository.aliases.aliases()
    rows = [
        {
            "model": name,
            "version": v.version,
            "aliases": sorted(a for a, n in aliases.get(name, {}).items() if n == v.version),
            "manifest_sha256": v.manifest_sha256,
        }
        for name in repository.models()
        for v in repository.versions(name)
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"models in {repo}")
    for column in ("model", "version", "aliases", "manifest sha256"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["model"],
            str(row["version"]),
            ", ".join(row["aliases"]),
            row["manifest_sha256"][:12],
        )
    console.print(table)


@repo_app.command("promote")
def repo_promote(
    repo: RepoArgument,
    model: ModelArgument,
    version: Annotated[int, typer.Argument(help="The version to point the alias at.")],
    alias: AliasOption = "production",
) -> None:
    """Point an alias at a version; a server following the repository swaps to it.
    Example: edgeft repo promote /srv/models elpv 3"""
    from edgeft.repository import ModelRepository

    before = ModelRepository(repo).promote(model, version, alias)
    console.print(f"{model} {alias}: {before or 'none'} -> {version}", highlight=False)


@repo_app.command("rollback")
def repo_rollback(
    repo: RepoArgument, model: ModelArgument, alias: AliasOption = "production"
) -> None:
    """Move an alias back to the version it pointed to before its last move.
    Example: edgeft repo rollback /srv/models elpv"""
    from edgeft.repository import ModelRepository

    version = ModelRepository(repo).rollback(model, alias)
    console.print(f"{model} {alias}: back to {version}", highlight=False)


@repo_app.command("history")
def repo_history(repo: RepoArgument, model: ModelArgument, as_json: JsonFlag = False) -> None:
    """Every alias change of a model: when, who, from and to.
    Example: edgeft repo history /srv/models elpv"""
    from dataclasses import asdict

    from edgeft.repository import ModelRepository

    changes = ModelRepository(repo).history(model)
    if as_json:
        print(json.dumps([asdict(c) for c in changes], indent=2))
        return
    table = Table(title=f"{model} alias history")
    for column in ("at", "who", "alias", "action", "from", "to"):
        table.add_column(column)
    for c in changes:
        table.add_row(
            c.at, c.who, c.alias, c.action, str(c.from_version or "-"), str(c.to_version or "-")
        )
    console.print(table)


@repo_app.command("rm")
def repo_rm(
    repo: RepoArgument,
    model: ModelArgument,
    version: Annotated[int, typer.Argument(help="The version to delete.")],
) -> None:
    """Delete a version no alias points to. Example: edgeft repo rm /srv/models elpv 1"""
    from edgeft.repository import ModelRepository

    ModelRepository(repo).remove(model, version)
    console.print(f"{model} version {version} removed", highlight=False)


@repo_app.command("export")
def repo_export(
    repo: RepoArgument,
    format: Annotated[str, typer.Option("--format", help="triton or ovms.")],
    out: Annotated[Path, typer.Option(help="The folder to write.")],
    engine: Annotated[str, typer.Option(help="onnxruntime or openvino.")] = "onnxruntime",
    precision: Annotated[
        str, typer.Option(help="fp32, or int8 (the int8 model that fits this host).")
    ] = "fp32",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
) -> None:
    """Lay out every model's production version for Triton or OVMS, with a KServe manifest.
    Example: edgeft repo export /srv/models --format triton --out triton-models"""
    from edgeft.repository import ModelRepository
    from edgeft.repository.export import export_repository

    models = export_repository(ModelRepository(repo), format, out, engine, precision, overwrite)
    for model in models:
        console.print(f"{model.name} version {model.version}: {model.entry.label}", highlight=False)
    console.print(f"{format} repository in {out} (KServe: {out / 'inferenceservice.yaml'})")


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
    from edgeft.monitor.active_learning import check_out_folder, export_for_labelling
    from edgeft.monitor.report import monitor_log

    if (export_uncertain is None) != (out is None):
        raise EdgeftError("--export-uncertain N and --out DIR go together")
    if out is not None:
        check_out_folder(out)  # before the analysis, which can take a while
    bundles: list[Path] = list(bundle or [])
    if repo is not None:
        from edgeft.repository import ModelRepository

        repository = ModelRepository(repo)
        bundles += [v.path for m in repository.models() for v in repository.versions(m)]
    if not bundles:
        raise EdgeftError(
            "pass --bundle B (repeatable) or --repo REPO: the reference to compare with"
        )
    report = monitor_log(log, bundles, window)
    exported = None
    if export_uncertain is not None and out is not None:
        exported = export_for_labelling(log, out, export_uncertain, strategy)
    if html is not None:
        from edgeft.atomic import write_text_atomically
        from edgeft.monitor.html_report import render_report

        write_text_atomically(html, render_report(report))
    if as_json:
        summary = report.to_dict() | ({"exported": exported.to_dict()} if exported else {})
        print(json.dumps(summary, indent=2))
    else:
        _print_monitor_report(report)
        if exported is not None:
            console.print(
                f"{exported.to_label} input(s) to label and {exported.labelled} labelled in "
                f"{exported.out}"
                + "".join(f"; label {k!r} in folder {v!r}" for k, v in exported.renamed.items())
                + (f"; {exported.damaged} damaged row(s) skipped" if exported.damaged else ""),
                highlight=False,
                markup=False,  # labels come from the log
            )
    if report.drifted:
        raise typer.Exit(1)


def _print_monitor_report(report: MonitorReport) -> None:
    """The report as tables; what the log says is printed as text, never read as markup."""
    import time

    from rich.markup import escape

    for version in report.versions:
        title = escape(f"{version.model} version {version.version}")
        if version.damaged:
            console.print(
                f"[red]{title}: {version.damaged} damaged row(s) of the log skipped[/] "
                f"(first: {escape(version.damage[0])})",
                highlight=False,
            )
        if version.skipped:
            console.print(f"{title}: not analysed: {version.skipped}", highlight=False)
            continue
        table = Table(title=f"{title} (windows of {report.window})")
        for column in ("window", "from", "items", "estimated accuracy", "realized", "drifted"):
            table.add_column(column)
        for i, w in enumerate(version.windows):
            estimate = w.estimate
            table.add_row(
                str(i + 1),
                time.strftime("%Y-%m-%d %H:%M", time.localtime(w.start)),
                str(w.items),
                ""
                if estimate is None
                else f"{estimate.value:.3f} [{estimate.low:.3f}, {estimate.high:.3f}]"
                + ("" if w.estimate_reliable else " (inputs drifted: unreliable)"),
                "" if w.realized is None else f"{w.realized:.3f} ({w.labelled})",
                f"[red]{', '.join(w.drifted)}[/]" if w.drifted else "[green]-[/]",
            )
        console.print(table)
    for when, note in report.notes:
        when_text = time.strftime("%Y-%m-%d %H:%M", time.localtime(when))
        console.print(f"note ({when_text}): {escape(note)}", highlight=False)


@app.command("shadow")
def shadow_report(
    model: Annotated[str, typer.Argument(help="The model whose shadow to compare.")],
    url: Annotated[str, typer.Option(help="The running server.")] = "http://127.0.0.1:8000",
    token_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the server's bearer token.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Production against its shadow version on the same requests: agreement, the classes the
    shadow would change, its latency. Example: edgeft shadow elpv --url http://box:8000"""
    import os
    import urllib.request

    request = urllib.request.Request(f"{url.rstrip('/')}/v1/models/{model}/shadow")
    if token_env:
        request.add_header("Authorization", f"Bearer {os.environ.get(token_env, '')}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            report = json.loads(response.read())
    except OSError as exc:
        raise EdgeftError(f"{url}: {exc}") from exc
    if as_json:
        print(json.dumps(report, indent=2))
        return
    agreement = report["agreement"]
    console.print(
        f"{model}: production {report['production_version']} vs shadow "
        f"{report['shadow_version']} on {report['items']} items ({report['requests']} requests): "
        f"agreement {'-' if agreement is None else f'{agreement:.1%}'}, shadow p50 "
        f"{report['shadow_latency_ms']['p50'] or 0:.1f} ms, p99 "
        f"{report['shadow_latency_ms']['p99'] or 0:.1f} ms, {report['failed']} failed, "
        f"{report['skipped']} skipped",
        highlight=False,
    )
    table = Table(title="where the shadow would answer differently")
    for column in ("production says", "shadow says", "items"):
        table.add_column(column)
    for change in report["changes"]:
        table.add_row(change["production"], change["shadow"], str(change["items"]))
    console.print(table)


def main() -> None:
    """Console-script entry point: errors are one line, not a traceback (unless --debug)."""
    debug = _DEBUG in sys.argv[1 : sys.argv.index("--") if "--" in sys.argv else None]
    try:
        app()
    except (EdgeftError, OSError, sqlite3.Error) as exc:
        if debug:
            raise
        Console(stderr=True, soft_wrap=True).print(
            f"[bold red]error:[/] {_one_line(exc)}", highlight=False
        )
        sys.exit(2)


def _one_line(exc: BaseException) -> str:
    """The error's message; a system or database error says what it is about too."""
    if isinstance(exc, EdgeftError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    kind = "database" if isinstance(exc, sqlite3.Error) else "system"
    return f"{kind} error: {exc}"

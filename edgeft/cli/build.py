"""Build-side commands: the model zoo, datasets, fine-tuning, export, int8, the demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgeft.cli import render
from edgeft.cli.app import JsonFlag, app, console, data_app
from edgeft.errors import EdgeftError


@app.command()
def models(as_json: JsonFlag = False) -> None:
    """List the offline model zoo (parameters and size measured by building each model).

    Example: edgeft models --json
    """
    from edgeft.zoo import ZOO, summarise

    rows = [summarise(name) for name in ZOO]
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        render.zoo(console, rows)


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
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        render.dataset_report(console, report, SPLITS)


# finetune's options that only an anomaly fit takes
ANOMALY_OPTIONS = {
    "layers", "bank_size", "scoring", "false_reject", "val_share", "defects_to_val", "group_by",
    "gaussians", "gaussian_pool",
}  # fmt: skip


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
    task: Annotated[
        str,
        typer.Option(
            help="classification (class folders or a text table) or anomaly (good parts "
            "only: an MVTec AD-layout folder, train/good/ and optional val/, test/, "
            "ground_truth/)."
        ),
    ] = "classification",
    layers: Annotated[
        str | None,
        typer.Option(help="anomaly: backbone layers, comma-separated (default: 1/8 and 1/16)."),
    ] = None,
    bank_size: Annotated[
        int, typer.Option(help="anomaly: patches kept in the memory bank.")
    ] = 3000,
    scoring: Annotated[
        str,
        typer.Option(
            help="anomaly: patch, embedding, mixed (the two), with --gaussians also gaussian and "
            "all (the three); or auto (best on val, else the widest mix)."
        ),
    ] = "auto",
    false_reject: Annotated[
        float,
        typer.Option(
            help="anomaly: share of good val parts the threshold may flag (no defects in val)."
        ),
    ] = 0.01,
    val_share: Annotated[
        float, typer.Option(help="anomaly, without val/: share of train/good held out.")
    ] = 0.1,
    defects_to_val: Annotated[
        float, typer.Option(help="anomaly, without val/: share of each test defect moved to val.")
    ] = 0.0,
    group_by: Annotated[
        str | None,
        typer.Option(
            help="anomaly: a metadata.csv column naming each good part's variant; each "
            "variant's good parts give it its own scales."
        ),
    ] = None,
    gaussians: Annotated[
        int | None,
        typer.Option(
            help="anomaly: also fit a Gaussian per image position (PaDiM) over this many "
            "feature channels, for parts that are aligned in the image (e.g. 128).",
            min=1,
        ),
    ] = None,
    gaussian_pool: Annotated[
        int,
        typer.Option(
            help="anomaly, with --gaussians: their grid is the patch grid averaged over this "
            "many patches square.",
            min=1,
        ),
    ] = 4,
) -> None:
    """Fine-tune a pretrained backbone on an image or text dataset (transfer learning), then QAT;
    or, with --task anomaly, fit an anomaly model on good parts (no training loop).

    Retrain: edgeft finetune --init-from runs/elpv --data new-labels --out runs/elpv-2
    Data-parallel: torchrun --nproc-per-node 2 -m edgeft finetune --data elpv --out runs/elpv
    Anomaly: edgeft finetune --task anomaly --data parts/ --out runs/parts
    """
    from edgeft.train import Recipe
    from edgeft.train import finetune as run_finetune

    # typer's own click: its ParameterSource is not click's enum, so it is compared by name
    typed = {
        k for k in ctx.params if getattr(ctx.get_parameter_source(k), "name", "") == "COMMANDLINE"
    }
    if task == "anomaly":
        from edgeft.anomaly import AnomalyRecipe, fit_anomaly

        render.anomaly_fit(console, fit_anomaly(AnomalyRecipe.from_options(ctx.params, typed), out))
        return
    if task != "classification":
        raise EdgeftError(f"--task {task!r}: choose classification or anomaly")
    anomaly_only = sorted(typed & ANOMALY_OPTIONS)
    if anomaly_only:
        flags = ", ".join("--" + name.replace("_", "-") for name in anomaly_only)
        raise EdgeftError(f"{flags}: only used with --task anomaly")
    result = run_finetune(
        Recipe.from_options(ctx.params, typed), out, resume=resume, console=console
    )
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
    acceptance set from the run's validation split (an anomaly run: with its memory bank,
    held to the fitted model on its validation items).

    Example: edgeft export runs/elpv --out bundles/elpv
    """
    from edgeft.export import export_bundle

    render.bundle_models(
        console, export_bundle(source, out, overwrite=overwrite, acceptance_size=acceptance_size)
    )


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
    from edgeft.engine_registry import ENGINES
    from edgeft.quantize import QuantizeConfig, quantize_bundle

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
    render.int8_bundle(
        console, quantize_bundle(bundle, out, config, overwrite=overwrite, console=console)
    )


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo writes its outputs.")] = Path(
        "edgeft-demo"
    ),
    quick: Annotated[
        bool, typer.Option(help="Feature extraction and short timings: a few minutes.")
    ] = False,
    task: Annotated[
        str,
        typer.Option(help="classification (labelled cells) or anomaly (good cells only)."),
    ] = "classification",
) -> None:
    """The built-in solar-cell defect demo: fine-tune (or fit on good cells, --task anomaly),
    compress, evaluate, benchmark, report.

    Example: edgeft demo --quick
    """
    if task == "anomaly":
        from edgeft.anomaly.demo import run_anomaly_demo

        run_anomaly_demo(workdir, console, quick=quick)
        return
    if task != "classification":
        raise EdgeftError(f"--task {task!r}: choose classification or anomaly")
    from edgeft.demo import run_demo

    run_demo(workdir, console, quick=quick)

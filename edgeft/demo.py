"""``edgeft demo``: the whole mission on the built-in ELPV solar-cell defect data.

Fine-tune MobileNetV2 (full fine-tuning with QAT; feature extraction with ``quick``), export
fp32 ONNX + OpenVINO IR (and the QAT int8 graphs), quantize both engines under the 1-point
budget, score fp32 and int8 on the test split through the torch-free runtime, benchmark on this
host's target, write the HTML report, and end with one table and the commands to go on with.
A finished step is reused when the demo runs again in the same folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from edgeft.data.elpv import LICENCE


@dataclass(frozen=True)
class DemoPlan:
    """How much work the demo does: the default fits 30 minutes on two CPU cores."""

    strategy: str
    epochs: int
    qat: bool
    bench_seconds: float

    @classmethod
    def choose(cls, quick: bool) -> DemoPlan:
        if quick:
            return cls(strategy="feature-extraction", epochs=30, qat=False, bench_seconds=1.0)
        return cls(strategy="full", epochs=12, qat=True, bench_seconds=3.0)


def run_demo(workdir: Path, console: Console, quick: bool = False) -> None:
    from edgeft.bench import ResultsStore, benchmark_bundle
    from edgeft.bench.report import screenshot, write_report
    from edgeft.bench.run import slower_int8
    from edgeft.data import inspect_dataset, load_dataset
    from edgeft.errors import EdgeftError
    from edgeft.evaluation import evaluate_bundle
    from edgeft.evaluation.slices import slice_table
    from edgeft.export import export_bundle
    from edgeft.quantize import QuantizeConfig, quantize_bundle
    from edgeft.targets import resolve_target
    from edgeft.train import Recipe, finetune
    from edgeft.train.run_folder import MODEL

    plan = DemoPlan.choose(quick)
    console.rule(f"edgeft demo: solar-cell defects (ELPV){' --quick' if quick else ''}")
    console.print(f"ELPV data: Deitsch et al., licence {LICENCE} (non-commercial).")
    dataset = load_dataset("elpv")
    for warning in inspect_dataset(dataset).warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    run_dir = workdir / f"run-{plan.strategy}"  # a quick run is never taken for the full one
    fp32_dir, bundle_dir = workdir / "fp32", workdir / "bundle"
    if (run_dir / MODEL).is_file():
        console.print(f"reusing the fine-tuned run in {run_dir}")
    else:
        recipe = Recipe(
            model="mobilenet_v2", data="elpv", strategy=plan.strategy, epochs=plan.epochs,
            patience=6, qat=plan.qat, qat_images=256,
            lr_head=3e-3 if plan.strategy == "feature-extraction" else None,
        )  # fmt: skip
        finetune(recipe, run_dir, resume=run_dir.exists(), console=console)
    console.rule("export and quantize")
    export_bundle(run_dir, fp32_dir, overwrite=True)
    bundle = quantize_bundle(
        fp32_dir, bundle_dir, QuantizeConfig(), overwrite=True, console=console
    )
    console.rule("evaluate and benchmark")
    target = resolve_target(None)
    columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        scores = evaluate_bundle(bundle, dataset, "test", "all", progress)
        run = benchmark_bundle(bundle, target, (1,), plan.bench_seconds, progress=progress)
    store = ResultsStore(workdir / "bench.sqlite")
    run_id = store.add(run)
    report = write_report(store.results([run_id], samples=True), workdir / "report.html",
                          "edgeft demo: ELPV solar-cell defects", evaluation=scores)  # fmt: skip
    console.print(f"report: {report}")
    try:
        console.print(f"report screenshot: {screenshot(report, workdir / 'report.png')}")
    except EdgeftError as exc:
        console.print(f"[dim]no screenshot: {exc}[/]")
    # OpenVINO's engine-default fp32 run is in the report; the table shows the bundle's models
    latency = {(m.engine, m.precision, m.variant): m.latency[1] for m in run.models}
    test = dataset.splits["test"]
    table = Table(title=f"ELPV test split ({len(test)} cells) through edgeft.runtime, "
                        f"latency on {target.name} at batch 1")  # fmt: skip
    for column in ("model", "accuracy", "macro-F1", "Δ acc pt", "size MB", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in scores:
        delta = r.scores.get("accuracy_delta_points")
        scheme = r.entry.int8_scheme
        stats = latency[(r.entry.engine, r.entry.precision, scheme.key if scheme else "")]
        table.add_row(
            r.entry.label,
            f"{r.scores['accuracy']:.4f}",
            f"{r.scores['macro_f1']:.4f}",
            "" if delta is None else f"{delta:+.2f}",
            f"{r.size_bytes / 1e6:.2f}",
            f"{stats.p50_ms:.2f}",
            f"{stats.p99_ms:.2f}",
        )
    console.print(table)
    sliced = slice_table("test accuracy per slice", [(r.entry.label, r.scores) for r in scores])
    if sliced is not None:
        console.print(sliced)
    for warning in slower_int8(run.latency_rows()):
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    example = test[0].item
    console.print("next:")
    console.print(f"  .venv/bin/edgeft validate {bundle_dir}", highlight=False)
    console.print(f"  .venv/bin/edgeft predict {bundle_dir} {example}", highlight=False)
    console.print(f"  .venv/bin/edgeft serve {bundle_dir}", highlight=False)
    console.print(f"  curl -F file=@{example} http://127.0.0.1:8000/v1/predict", highlight=False)

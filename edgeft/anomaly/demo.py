"""``edgeft demo --task anomaly``: anomaly detection from good parts on the built-in ELPV cells.

Fit on the functional cells of ELPV's train split (no defect is shown to the model), with
per-position Gaussians and each module type (mono, poly) scaled by its own good cells, export
with the memory bank, quantize the feature network on both engines (``quick``: ONNX Runtime
only, and a 1,000-patch bank) under a 0.5-point image
AUROC budget on validation, score the test split's good cells against the defective ones
(per defect probability and module type) through the torch-free runtime, time each model with
its search on this host, write the HTML report (score histogram, defect maps of hits and
misses), and end with one table and the commands to go on with. A finished
step is reused when the demo runs again in the same folder.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from edgeft.data.elpv import LICENCE

MAX_AUROC_DROP_POINTS = 0.5
GAUSSIAN_CHANNELS = 128  # with 4x4 pooling: the levers that lift ELPV most (anomaly_elpv.md)


def run_anomaly_demo(workdir: Path, console: Console, quick: bool = False) -> None:
    from edgeft.anomaly.elpv import materialise_elpv_inspection
    from edgeft.anomaly.export import export_anomaly_bundle
    from edgeft.anomaly.fit import SCORING, AnomalyRecipe, fit_anomaly
    from edgeft.bench import benchmark_bundle
    from edgeft.bundle import Bundle
    from edgeft.evaluation.anomaly_eval import evaluate_anomaly_bundle
    from edgeft.evaluation.anomaly_report import write_anomaly_report
    from edgeft.quantize import QuantizeConfig, quantize_bundle
    from edgeft.quantize.bundle_quantize import NoInt8Model
    from edgeft.targets import resolve_target

    console.rule("edgeft demo --task anomaly: solar-cell defects from good cells (ELPV)")
    console.print(f"ELPV data: Deitsch et al., licence {LICENCE} (non-commercial).")
    data = materialise_elpv_inspection()
    run_dir, fp32_dir, bundle_dir = (workdir / n for n in ("anomaly-run", "anomaly-fp32",
                                                           "anomaly-bundle"))  # fmt: skip
    if (run_dir / SCORING).is_file():
        console.print(f"reusing the fitted model in {run_dir}")
    else:
        recipe = AnomalyRecipe(data=str(data), bank_size=1000 if quick else 3000,
                               group_by="module_type", gaussians=GAUSSIAN_CHANNELS)  # fmt: skip
        run = fit_anomaly(recipe, run_dir, console)
        console.print(f"fitted {run.report['bank_rows']}-patch bank in "
                      f"{run.report['fit_seconds']:.1f} s; scoring {run.spec.scoring}")  # fmt: skip
    console.rule("export and quantize")
    export_anomaly_bundle(run_dir, fp32_dir, overwrite=True)
    try:
        engines = ("onnxruntime",) if quick else ("onnxruntime", "openvino")
        config = QuantizeConfig(engines=engines, max_accuracy_drop=MAX_AUROC_DROP_POINTS)
        bundle = quantize_bundle(fp32_dir, bundle_dir, config, overwrite=True, console=console)
    except NoInt8Model as exc:
        console.print(f"[yellow]warning:[/] {exc}; the fp32 bundle serves")
        bundle = Bundle.load(fp32_dir)
    console.rule("evaluate and benchmark")
    target = resolve_target(None)
    columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        evaluated = evaluate_anomaly_bundle(bundle.root, progress=progress)
        timed = benchmark_bundle(bundle, target, (1,), 1.0 if quick else 3.0, progress=progress)
    latency = {(m.engine, m.precision, m.variant): m.latency[1] for m in timed.models}
    first = evaluated.results[0].scores
    table = Table(
        title=f"ELPV test split ({first['items']} cells, {first['defects']} defective) through "
        f"edgeft.runtime; latency with the search on {target.name} at batch 1"
    )
    for column in ("model", "AUROC all", "AUROC p=1", "false-reject", "escape", "size MB",
                   "p50 ms", "p99 ms"):  # fmt: skip
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in evaluated.results:
        s = r.scores
        scheme = r.entry.int8_scheme
        stats = latency.get((r.entry.engine, r.entry.precision, scheme.key if scheme else ""))
        table.add_row(
            r.entry.label,
            f"{s['image_auroc']:.4f}",
            f"{s['per_defect'].get('p100', {}).get('image_auroc', float('nan')):.4f}",
            f"{s['false_reject']:.3f}",
            f"{s['escape']:.3f}",
            f"{r.size_bytes / 1e6:.2f}",
            "" if stats is None else f"{stats.p50_ms:.2f}",
            "" if stats is None else f"{stats.p99_ms:.2f}",
        )
    console.print(table)
    report = write_anomaly_report(evaluated, workdir / "anomaly-report.html")
    console.print(f"report (score histogram, defect maps of hits and misses): {report}")
    example = next(iter(sorted((data / "test" / "p100").iterdir())))
    console.print("next:")
    for line in (
        f".venv/bin/edgeft eval {bundle.root}",
        f".venv/bin/edgeft predict {bundle.root} {example} --overlay overlays/",
        f".venv/bin/edgeft threshold {bundle.root} --value 0.6 --out {bundle.root}-t060",
        f".venv/bin/edgeft serve {bundle.root}",
        f"curl -F file=@{example} 'http://127.0.0.1:8000/v1/predict?overlay=true'",
    ):
        console.print(f"  {line}", highlight=False)

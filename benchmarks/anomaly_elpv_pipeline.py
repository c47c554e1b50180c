"""ELPV anomaly detection through the product, good cells only: fit, export, quantize (both
engines, 0.5-point AUROC budget), then every model of the bundle on the test split through the
torch-free runtime, and each timed with its search at batch 1 (``edgeft bench``).

    .venv/bin/python benchmarks/anomaly_elpv_pipeline.py                   # both settings
    .venv/bin/python benchmarks/anomaly_elpv_pipeline.py --only variants   # one of them

The same as the commands (``benchmarks/results/anomaly_elpv_pipeline.md`` lists them):
``edgeft finetune --task anomaly --data elpv [--group-by module_type --gaussians 128]``, then
``export``, ``quantize --max-accuracy-drop 0.5``, ``eval`` and ``bench``. Results go to
``benchmarks/results/anomaly_elpv_pipeline.json`` (per setting and host).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from edgeft.anomaly import AnomalyRecipe, fit_anomaly
from edgeft.anomaly.detection_metrics import auroc
from edgeft.anomaly.elpv import materialise_elpv_inspection
from edgeft.anomaly.export import export_anomaly_bundle
from edgeft.bench import benchmark_bundle
from edgeft.bundle import Bundle
from edgeft.evaluation.anomaly_eval import evaluate_anomaly_bundle
from edgeft.quantize import QuantizeConfig, quantize_bundle
from edgeft.targets import host_fingerprint, resolve_target

RESULTS = Path(__file__).parent / "results" / "anomaly_elpv_pipeline.json"
SETTINGS: dict[str, dict[str, Any]] = {
    "default": {},
    "variants + gaussians": {"group_by": "module_type", "gaussians": 128},
}
# Each test cell's defect folder (edgeft.anomaly.elpv): its defect probability.
DEFECTS = {"p=1": ("p100",), "p>=2/3": ("p067", "p100"), "any": ("p033", "p067", "p100")}


def run(name: str, workdir: Path, console: Console) -> dict[str, Any]:
    data = materialise_elpv_inspection()
    started = time.perf_counter()
    fitted = fit_anomaly(AnomalyRecipe(data=str(data), **SETTINGS[name]), workdir / "run", console)
    fit_command_s = time.perf_counter() - started
    export_anomaly_bundle(fitted.run_dir, workdir / "fp32")
    started = time.perf_counter()
    bundle = quantize_bundle(
        workdir / "fp32", workdir / "int8", QuantizeConfig(max_accuracy_drop=0.5), console=console
    )
    quantize_s = time.perf_counter() - started
    evaluated = evaluate_anomaly_bundle(bundle.root)
    defect = np.array([item.defect or "good" for item in evaluated.items])
    good = defect == "good"
    timed = benchmark_bundle(bundle, resolve_target(None), (1,), 5.0)
    timing = {(m.engine, m.precision, m.variant): m for m in timed.models}
    models = []
    for result in evaluated.results:
        raw, label = evaluated.raw[result.entry.label], result.entry.label
        figures = {
            column: auroc(raw[good | np.isin(defect, kinds)], ~good[good | np.isin(defect, kinds)])
            for column, kinds in DEFECTS.items()
        }
        int8, scheme = result.entry.int8, result.entry.int8_scheme
        timed_model = timing[
            (result.entry.engine, result.entry.precision, scheme.key if scheme else "")
        ]
        stats = timed_model.latency[1]
        models.append({
            "model": label,
            "size_mb": round(result.size_bytes / 1e6, 2),
            "image_auroc": figures,
            "false_reject": result.scores["false_reject"],
            "escape": result.scores["escape"],
            "val_drop_points": None if int8 is None else int8.val_drop_points,
            "p50_ms": stats.p50_ms,
            "p99_ms": stats.p99_ms,
            "cold_start_ms": timed_model.cold_start_ms,
            "peak_rss_mb": timed_model.peak_rss_mb,
        })  # fmt: skip
    files = Bundle.load(bundle.root).manifest.anomaly.files  # type: ignore[union-attr]
    return {
        "setting": name,
        "recipe": SETTINGS[name],
        "fit_s": fitted.report["fit_seconds"],
        "fit_command_s": round(fit_command_s, 1),
        "quantize_s": round(quantize_s, 1),
        "scoring": fitted.spec.scoring,
        "anomaly_files_mb": {
            rel: round((bundle.root / rel).stat().st_size / 1e6, 2) for rel in files
        },
        "models": models,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="parts of setting names to run")
    args = parser.parse_args()
    console = Console()
    host = host_fingerprint()
    kept = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    by_name = {r["setting"]: r for r in kept.get("results", [])} if kept.get("host") == host else {}
    for name in SETTINGS:
        if args.only and not any(o in name for o in args.only):
            continue
        with tempfile.TemporaryDirectory(prefix="elpv-pipeline-") as workdir:
            by_name[name] = run(name, Path(workdir), console)
    table = Table(title="ELPV through the product: the test split, every model")
    for column in ("setting", "model", "p=1", "p>=2/3", "any", "false-reject", "size MB",
                   "p50 ms"):  # fmt: skip
        table.add_column(column)
    for r in by_name.values():
        for m in r["models"]:
            table.add_row(
                r["setting"], m["model"], *(f"{m['image_auroc'][k]:.4f}" for k in DEFECTS),
                f"{m['false_reject']:.3f}", str(m["size_mb"]), f"{m['p50_ms']:.2f}",
            )  # fmt: skip
    console.print(table)
    RESULTS.write_text(json.dumps({"host": host, "results": list(by_name.values())}, indent=2))


if __name__ == "__main__":
    main()

"""`edgeft bench` on an ELPV bundle, its HTML report (rendered in headless Chromium), and
edgeft's OpenVINO latency against OpenVINO's own benchmark_app on the same IR and settings.

    .venv/bin/python benchmarks/bench_elpv.py --bundle BUNDLE [--rounds 5 --seconds 5]

benchmark_app runs with ``-hint latency`` and ``-shape`` (a static batch-1 copy of the IR, as
edgeft's OpenVINO session compiles per batch size), plus ``-infer_precision f32`` for fp32 (the
same true fp32 edgeft measures); edgeft opens the IR the way ``edgeft bench`` does (the host's
target profile: LATENCY hint, default threads) and times ``EngineSession.run`` back to back,
input copy included, where benchmark_app times inference alone. The two alternate for ``--rounds`` rounds so machine noise hits both;
the ratio is of the medians of the round medians. ONNX Runtime's onnxruntime_perf_test is not
part of its pip wheel, so ONNX Runtime has no reference tool here.
Writes benchmarks/results/bench_elpv.{json,md} and bench_elpv_report.{html,png}.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console

from edgeft.bench import ResultsStore, benchmark_bundle, time_calls
from edgeft.bench.inputs import benchmark_inputs
from edgeft.bench.report import screenshot, write_report
from edgeft.bundle import Bundle
from edgeft.runtime.engines import open_session
from edgeft.targets import resolve_target

RESULTS = Path(__file__).parent / "results"
console = Console(width=160)


def benchmark_app_median_ms(xml: Path, shape: list[int], precision: str, seconds: int) -> float:
    tool = shutil.which("benchmark_app", path=str(Path(sys.executable).parent))
    command = [
        tool or "benchmark_app", "-m", str(xml), "-d", "CPU", "-hint", "latency",
        "-t", str(seconds), "-shape", str(shape).replace(" ", ""),
    ]  # fmt: skip
    if precision == "fp32":
        command += ["-infer_precision", "f32"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Median:\s+([\d.]+) ms", output).group(1))  # type: ignore[union-attr]


def versus_benchmark_app(bundle: Bundle, rounds: int, seconds: int) -> list[dict]:
    target = resolve_target(None)
    settings = target.session_settings("openvino")
    inputs = benchmark_inputs(bundle, 1)
    shape = list(next(iter(inputs.values())).shape)
    rows = []
    for entry in (m for m in bundle.manifest.models if m.engine == "openvino"):
        path = bundle.path_of(entry)
        session = open_session("openvino", path, precision=entry.precision, **settings)
        pairs = []
        for _ in range(rounds):
            reference = benchmark_app_median_ms(path, shape, entry.precision, seconds)
            for _ in range(20):
                session.run(inputs)
            ours = float(np.median(time_calls(session, inputs, seconds, 20)) * 1000)
            pairs.append((reference, ours))
            console.print(
                f"{entry.precision}: benchmark_app {reference:.3f} ms, edgeft {ours:.3f} ms"
            )
        reference, ours = (float(np.median(v)) for v in zip(*pairs, strict=True))
        rows.append(
            {
                "model": f"openvino {entry.precision}",
                "benchmark_app p50 ms": reference,
                "edgeft p50 ms": ours,
                "edgeft / benchmark_app": ours / reference,
                "rounds": [{"benchmark_app": a, "edgeft": b} for a, b in pairs],
            }
        )
    return rows


def _markdown_table(rows: list[dict], keys: list[str]) -> list[str]:
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [f"{row[k]:.3f}" if isinstance(row[k], float) else str(row[k]) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    bundle = Bundle.load(args.bundle)
    target = resolve_target(None)
    run = benchmark_bundle(bundle, target, (1, 8), duration_s=6.0)
    with tempfile.TemporaryDirectory() as tmp:
        store = ResultsStore(Path(tmp) / "bench.sqlite")
        store.add(run)
        rows = store.results(samples=True)
    RESULTS.mkdir(exist_ok=True)
    page = write_report(rows, RESULTS / "bench_elpv_report.html", "edgeft bench: ELPV MobileNetV2")
    screenshot(page, RESULTS / "bench_elpv_report.png")
    comparison = versus_benchmark_app(bundle, args.rounds, args.seconds)
    command = " ".join([Path(sys.executable).name, *sys.argv])
    results = {"command": command, "run": run.to_dict(), "vs_benchmark_app": comparison}
    for model in results["run"]["models"]:
        model.pop("samples_ms")
    (RESULTS / "bench_elpv.json").write_text(json.dumps(results, indent=2) + "\n")
    keys = ["model", "batch", "p50_ms", "p90_ms", "p99_ms", "throughput_ips",
            "throughput_mode_ips", "cold_start_ms", "peak_rss_mb", "size_mb", "accuracy"]  # fmt: skip
    markdown = [
        "# `edgeft bench` on ELPV, and against benchmark_app",
        "",
        f"`{command}` on {run.host['cpu']} ({run.host['cores']} cores), target {run.target}, "
        f"engines {run.host['versions']}. Accuracy is the validation accuracy recorded at quantize.",
        "",
        *_markdown_table(rows, keys),
        "",
        "Report: `bench_elpv_report.html` (screenshot `bench_elpv_report.png`, headless Chromium).",
        "",
        f"## edgeft vs OpenVINO benchmark_app (batch 1, LATENCY hint, {args.rounds} alternating rounds of {args.seconds:g} s)",
        "",
        *_markdown_table(comparison, ["model", "benchmark_app p50 ms", "edgeft p50 ms", "edgeft / benchmark_app"]),
        "",
    ]  # fmt: skip
    (RESULTS / "bench_elpv.md").write_text("\n".join(markdown))
    console.print("\n".join(markdown))


if __name__ == "__main__":
    main()

"""edgeft's int8 against the defaults a user would try first, on a fine-tuned ELPV run.

    .venv/bin/python benchmarks/int8_elpv.py --run RUN_DIR --out /tmp/int8-elpv

Exports RUN_DIR, runs ``edgeft quantize`` (both engines, 1-point budget on validation), and,
beside it, ``onnxruntime.quantization.quantize_static`` with its defaults on the same
calibration images. Every model is scored on the ELPV test split through edgeft.runtime, and
timed at batch 1 in interleaved rounds in this one process (median of round medians). OpenVINO
fp32 is measured true fp32 (INFERENCE_PRECISION_HINT=f32) and as OpenVINO runs it by default.
Writes benchmarks/results/int8_elpv.{json,md}.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, quantize_static
from rich.console import Console
from side_by_side import (
    add_batch1_latency,
    elpv_test_groups,
    int8_choices,
    run_arguments,
    write_table,
)

from edgeft.bundle import model_files
from edgeft.data import load_dataset
from edgeft.export import export_bundle
from edgeft.quantize import QuantizeConfig, quantize_bundle, resolve_recipe, select_calibration
from edgeft.runtime.scoring import encode_items, encode_split, model_logits, score_logits
from edgeft.targets import host_fingerprint, this_host

RESULTS = Path(__file__).parent / "results"


class _Reader(CalibrationDataReader):
    def __init__(self, batches: list[dict[str, np.ndarray]]) -> None:
        self.items = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.items, None)


def main() -> None:
    args = run_arguments()
    console = Console()
    fp32 = export_bundle(args.run, args.out / "fp32", overwrite=True)
    started = time.perf_counter()
    bundle = quantize_bundle(
        fp32.root, args.out / "int8", QuantizeConfig(use_qat=False), overwrite=True, console=console
    )
    quantize_seconds = time.perf_counter() - started

    dataset = load_dataset("elpv")
    calibration = select_calibration(resolve_recipe(None), dataset)
    baseline = args.out / "quantize_static_defaults.onnx"
    started = time.perf_counter()
    quantize_static(
        str(fp32.path_of(fp32.manifest.model("onnxruntime", "fp32"))),
        str(baseline),
        _Reader(encode_items(bundle, calibration.items).batches),
    )
    baseline_seconds = time.perf_counter() - started

    def model(engine: str, precision: str) -> Path:
        return bundle.path_of(bundle.manifest.model(engine, precision))

    models = {
        "onnxruntime fp32": ("onnxruntime", model("onnxruntime", "fp32"), "fp32"),
        "onnxruntime int8 (edgeft)": ("onnxruntime", model("onnxruntime", "int8"), "int8"),
        "onnxruntime int8 (quantize_static defaults)": ("onnxruntime", baseline, "int8"),
        "openvino fp32 (true f32)": ("openvino", model("openvino", "fp32"), "fp32"),
        "openvino fp32 (default hint)": ("openvino", model("openvino", "fp32"), "default"),
        "openvino int8 (edgeft)": ("openvino", model("openvino", "int8"), "int8"),
    }
    for m in fp32.manifest.models:
        if m.precision == "int8":  # the run's QAT models, exported from its QAT weights
            models[f"{m.engine} int8 (QAT export)"] = (m.engine, fp32.path_of(m), "int8")
    test = encode_split(bundle, dataset, "test")
    certain = elpv_test_groups(dataset)["certain"]
    reference = {}
    rows = {}
    for name, (engine, path, precision) in models.items():
        logits = model_logits(engine, path, precision, test)
        reference.setdefault(engine, logits)
        scores = score_logits(logits, test, reference[engine])
        files = model_files(path)
        hits = logits.argmax(1) == test.labels
        rows[name] = {
            "accuracy": scores["accuracy"],
            "accuracy_certain_cells": float(hits[certain].mean()),
            "accuracy_uncertain_cells": float(hits[~certain].mean()),
            "macro_f1": scores["macro_f1"],
            "agreement_with_fp32": scores["agreement"],
            "size_mb": sum(f.stat().st_size for f in files) / 1e6,
        }
    add_batch1_latency(rows, models, test, args.rounds, args.seconds)
    host = this_host()
    result = {
        "command": f"python benchmarks/int8_elpv.py --run {args.run} --out {args.out}",
        "host": host_fingerprint(host),
        "quantize_seconds": round(quantize_seconds, 1),
        "quantize_static_seconds": round(baseline_seconds, 1),
        "test_examples": len(test),
        "certain_test_cells": int(certain.sum()),
        "models": rows,
        "edgeft_int8_details": int8_choices(bundle),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "int8_elpv.json").write_text(json.dumps(result, indent=2))
    columns = ("model", "test accuracy", "certain cells", "uncertain cells", "macro-F1",
               "agreement with fp32", "size MB", "p50 ms (batch 1)")  # fmt: skip
    cells = {
        name: (
            f"{r['accuracy']:.4f}",
            f"{r['accuracy_certain_cells']:.4f}",
            f"{r['accuracy_uncertain_cells']:.4f}",
            f"{r['macro_f1']:.4f}",
            f"{r['agreement_with_fp32']:.4f}",
            f"{r['size_mb']:.2f}",
            f"{r['p50_ms_batch1']:.2f}",
        )
        for name, r in rows.items()
    }
    write_table(
        cells,
        columns,
        f"ELPV test ({len(test)} cells), batch-1 latency medians, {host.cpu_model}",
        RESULTS / "int8_elpv.md",
        f"Command: `{result['command']}`\n\nHost: {host.cpu_model}, {host.cores} cores",
        console,
    )


if __name__ == "__main__":
    main()

"""ONNX Runtime int8 for a transformer: matrix-product outputs left in float (edgeft's transformer
setting) against the same model with them quantized too, on MiniLM and the reviews.

    .venv/bin/python benchmarks/text_float_islands.py --run RUN_DIR --out /tmp/islands

RUN_DIR is an ``edgeft finetune --model minilm --data rotten-tomatoes`` run (feature extraction
is enough to see the lever). The run is exported and quantized twice for ONNX Runtime with the
same calibration (minmax, a budget wide enough that no layer is kept in float): once as edgeft
does, once with ONNX Runtime's default of quantizing MatMul outputs as well (so attention scores
reach the softmax, and each linear layer's output its bias, in 8 bits). fp32 and both int8
models are scored on the test split through edgeft.runtime and timed at batch 1 on one review
in interleaved rounds. Writes benchmarks/results/text_float_islands.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from rich.console import Console
from side_by_side import add_batch1_latency, write_table

import edgeft.quantize.backends.onnxruntime_backend as onnxruntime_backend
from edgeft.bundle import Bundle
from edgeft.data import load_dataset
from edgeft.export import export_bundle
from edgeft.quantize import QuantizeConfig, quantize_bundle
from edgeft.runtime.scoring import encode_split, model_logits, score_logits
from edgeft.targets import host_fingerprint

RESULTS = Path(__file__).parent / "results"
CONFIG = QuantizeConfig(
    engines=("onnxruntime",), method="minmax", max_accuracy_drop=100.0, max_float_layers=0
)


def int8_with_matmul_outputs_quantized(fp32: Path, out: Path, console: Console) -> Bundle:
    """``quantize_bundle`` with MatMul taken out of the ops whose outputs stay in float."""
    quantize_static = onnxruntime_backend.quantize_static

    def with_quantized_outputs(*args, **kwargs):
        options = kwargs["extra_options"]
        excluded = options["OpTypesToExcludeOutputQuantization"]
        options["OpTypesToExcludeOutputQuantization"] = [t for t in excluded if t != "MatMul"]
        return quantize_static(*args, **kwargs)

    onnxruntime_backend.quantize_static = with_quantized_outputs
    try:
        return quantize_bundle(fp32, out, CONFIG, overwrite=True, console=console)
    finally:
        onnxruntime_backend.quantize_static = quantize_static


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    console = Console()
    shutil.rmtree(args.out, ignore_errors=True)
    fp32 = export_bundle(args.run, args.out / "fp32")
    bundles = {
        "int8, MatMul outputs in float (edgeft)": quantize_bundle(
            fp32.root, args.out / "islands", CONFIG, console=console
        ),
        "int8, MatMul outputs quantized": int8_with_matmul_outputs_quantized(
            fp32.root, args.out / "quantized", console
        ),
    }
    dataset = load_dataset("rotten-tomatoes")
    test = encode_split(fp32, dataset, "test")
    fp32_entry = fp32.manifest.model("onnxruntime", "fp32")
    entries = {"fp32": (fp32, fp32_entry)} | {
        name: (b, b.manifest.model("onnxruntime", "int8")) for name, b in bundles.items()
    }
    reference = model_logits("onnxruntime", fp32.path_of(fp32_entry), "fp32", test)
    rows, models = {}, {}
    for name, (bundle, entry) in entries.items():
        path = bundle.path_of(entry)
        scores = score_logits(
            model_logits("onnxruntime", path, entry.precision, test), test, reference
        )
        rows[name] = {
            "accuracy": scores["accuracy"],
            "agreement_with_fp32": scores["agreement"],
            "size_mb": bundle.size_of(entry) / 1e6,
        }
        models[name] = ("onnxruntime", path, entry.precision)
    add_batch1_latency(rows, models, test, args.rounds, args.seconds)
    host = host_fingerprint()
    command = f"python benchmarks/text_float_islands.py --run {args.run} --out {args.out}"
    strategy = json.loads((args.run / "recipe.json").read_text())["strategy"]
    trained = f"edgeft finetune --model minilm --data rotten-tomatoes --strategy {strategy}"
    RESULTS.mkdir(exist_ok=True)
    result = {"command": command, "host": host, "test_examples": len(test), "models": rows}
    (RESULTS / "text_float_islands.json").write_text(json.dumps(result, indent=2))
    write_table(
        {
            name: (
                f"{r['accuracy']:.4f}",
                f"{r['agreement_with_fp32']:.4f}",
                f"{r['size_mb']:.2f}",
                f"{r['p50_ms_batch1']:.2f}",
                " / ".join(f"{p:.2f}" for p in r["round_p50s_ms"]),
            )
            for name, r in rows.items()
        },
        (
            "ONNX Runtime model",
            "test accuracy",
            "agreement with fp32",
            "size MB",
            "p50 ms",
            "round p50s ms",
        ),
        f"MiniLM on the reviews ({len(test)} test), batch 1",
        RESULTS / "text_float_islands.md",
        f"Command: `{command}` (the run: `{trained}`)\n\n"
        f"Host: {host['cpu']}, {', '.join(host['flags'])}",
        console,
    )


if __name__ == "__main__":
    main()

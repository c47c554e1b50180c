"""MiniLM on the built-in Rotten Tomatoes reviews: TF-IDF + logistic regression against the
fine-tuned encoder, then its int8 models against the default a user would try first.

    .venv/bin/python benchmarks/text_minilm.py --run RUN_DIR [--fe-run FE_RUN] --out /tmp/text

RUN_DIR is an ``edgeft finetune --model minilm --data rotten-tomatoes`` run (FE_RUN, optionally,
the feature-extraction one). The baseline's C is chosen on the validation split. The run is
exported, ``edgeft quantize`` makes both int8 models (1-point budget on validation), and beside
them what a user would try first: ``optimum-cli onnxruntime quantize --avx2`` (optimum's dynamic
quantization for AVX2: u8 weights per tensor, activations quantized at run time) run on a folder
holding the same fp32 ONNX file. Everything is scored on the test split through
edgeft.runtime and timed at batch 1 on one test review in interleaved rounds. ``--reuse`` keeps
the int8 bundle an earlier run wrote to --out (quantizing takes about a quarter of an hour).
Writes benchmarks/results/text_minilm.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from side_by_side import add_batch1_latency, int8_choices, write_table
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from edgeft.bundle import Bundle, model_files
from edgeft.data import load_dataset
from edgeft.export import export_bundle
from edgeft.quantize import QuantizeConfig, quantize_bundle
from edgeft.runtime.classification_metrics import classification_metrics
from edgeft.runtime.scoring import encode_split, model_logits, score_logits
from edgeft.targets import host_fingerprint, this_host

RESULTS = Path(__file__).parent / "results"


def tfidf_baseline(dataset) -> dict:
    """Word 1-2-gram TF-IDF + logistic regression, C picked on validation macro-F1."""
    texts = {s: [e.item for e in dataset.splits[s]] for s in dataset.splits}
    labels = {s: np.array([e.label for e in dataset.splits[s]]) for s in dataset.splits}
    started = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    train = vectorizer.fit_transform(texts["train"])
    best = None
    for c in (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0):
        model = LogisticRegression(C=c, max_iter=2000).fit(train, labels["train"])
        val = classification_metrics(
            labels["val"], model.predict(vectorizer.transform(texts["val"])), dataset.classes
        )
        if best is None or val["macro_f1"] > best[0]:
            best = (val["macro_f1"], c, model)
    _, c, model = best
    test = classification_metrics(
        labels["test"], model.predict(vectorizer.transform(texts["test"])), dataset.classes
    )
    return {"C": c, "seconds": round(time.perf_counter() - started, 1), "test": test}


def optimum_cli_avx2(onnx_fp32: Path, out: Path) -> Path:
    """Quantize ``onnx_fp32`` with ``optimum-cli onnxruntime quantize --avx2`` as a user would
    (the CLI takes a folder of ONNX files), and return the quantized file."""
    source, target = out / "optimum-cli-input", out / "optimum-cli-avx2"
    for folder in (source, target):
        shutil.rmtree(folder, ignore_errors=True)
    source.mkdir(parents=True)
    shutil.copyfile(onnx_fp32, source / "model.onnx")
    cli = Path(sys.executable).with_name("optimum-cli")
    command = [str(cli), "onnxruntime", "quantize", "--avx2"]
    subprocess.run([*command, "--onnx_model", str(source), "-o", str(target)], check=True)
    return target / "model_quantized.onnx"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--fe-run", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--reuse", action="store_true", help="Keep the int8 bundle in --out.")
    parser.add_argument("--name", default="text_minilm", help="Results file stem.")
    args = parser.parse_args()
    console = Console()
    dataset = load_dataset("rotten-tomatoes")
    baseline = tfidf_baseline(dataset)
    training = {"TF-IDF + logistic regression": baseline | {"trainable_params": None}}
    for label, run in (("MiniLM feature extraction", args.fe_run), ("MiniLM", args.run)):
        if run is not None:
            metrics = json.loads((run / "metrics.json").read_text())
            recipe = json.loads((run / "recipe.json").read_text())
            training[f"{label} ({recipe['strategy']})"] = {
                "seconds": metrics["training_seconds"],
                "trainable_params": metrics["trainable_params"],
                "test": metrics["test"],
            }

    started = time.perf_counter()
    if args.reuse:  # re-score and re-time the bundles an earlier run left in --out
        bundle, quantize_seconds = Bundle.load(args.out / "int8"), None
    else:
        fp32 = export_bundle(args.run, args.out / "fp32", overwrite=True)
        bundle = quantize_bundle(
            fp32.root, args.out / "int8", QuantizeConfig(), overwrite=True, console=console
        )
        quantize_seconds = round(time.perf_counter() - started, 1)
    onnx_fp32 = bundle.path_of(bundle.manifest.model("onnxruntime", "fp32"))
    optimum_int8 = optimum_cli_avx2(onnx_fp32, args.out)

    def model(engine: str, precision: str) -> Path:
        return bundle.path_of(bundle.manifest.model(engine, precision))

    ort_setting = bundle.manifest.model("onnxruntime", "int8").details["setting"]
    models = {
        "onnxruntime fp32": ("onnxruntime", onnx_fp32, "fp32"),
        f"onnxruntime int8 (edgeft, {ort_setting})": (
            "onnxruntime",
            model("onnxruntime", "int8"),
            "int8",
        ),
        "onnxruntime int8 (optimum-cli --avx2)": ("onnxruntime", optimum_int8, "int8"),
        "openvino fp32 (true f32)": ("openvino", model("openvino", "fp32"), "fp32"),
        "openvino int8 (edgeft)": ("openvino", model("openvino", "int8"), "int8"),
    }
    test = encode_split(bundle, dataset, "test")
    reference: dict[str, np.ndarray] = {}
    rows = {}
    for name, (engine, path, precision) in models.items():
        logits = model_logits(engine, path, precision, test)
        reference.setdefault(engine, logits)
        scores = score_logits(logits, test, reference[engine])
        rows[name] = {
            "accuracy": scores["accuracy"],
            "macro_f1": scores["macro_f1"],
            "agreement_with_fp32": scores["agreement"],
            "size_mb": sum(f.stat().st_size for f in model_files(path)) / 1e6,
        }
    add_batch1_latency(rows, models, test, args.rounds, args.seconds)
    host = this_host()
    command = (
        f"python benchmarks/text_minilm.py --run {args.run}"
        + (f" --fe-run {args.fe_run}" if args.fe_run else "")
        + (f" --name {args.name}" if args.name != "text_minilm" else "")
    )
    result = {
        "command": f"{command} --out {args.out}" + (" --reuse" if args.reuse else ""),
        "host": host_fingerprint(host),
        "test_examples": len(test),
        "tokens_in_timed_review": int(test.batches[0]["attention_mask"][0].sum()),
        "training": training,
        "quantize_seconds": quantize_seconds,
        "models": rows,
        "edgeft_int8_details": int8_choices(bundle),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    preamble = f"Command: `{result['command']}`\n\nHost: {host.cpu_model}, {host.cores} cores"
    write_table(
        {
            name: (
                f"{r['test']['accuracy']:.4f}",
                f"{r['test']['macro_f1']:.4f}",
                f"{r['seconds']:.0f}",
                f"{r['trainable_params']:,}" if r["trainable_params"] else "-",
            )
            for name, r in training.items()
        },
        ("model", "test accuracy", "macro-F1", "training s", "trainable params"),
        f"Rotten Tomatoes test ({len(test)} reviews)",
        RESULTS / f"{args.name}_training.md",
        preamble,
        console,
    )
    write_table(
        {
            name: (
                f"{r['accuracy']:.4f}",
                f"{r['macro_f1']:.4f}",
                f"{r['agreement_with_fp32']:.4f}",
                f"{r['size_mb']:.2f}",
                f"{r['p50_ms_batch1']:.2f}",
            )
            for name, r in rows.items()
        },
        ("model", "test accuracy", "macro-F1", "agreement with fp32", "size MB", "p50 ms"),
        f"MiniLM int8, Rotten Tomatoes test, batch-1 medians, {host.cpu_model}",
        RESULTS / f"{args.name}.md",
        preamble,
        console,
    )


if __name__ == "__main__":
    main()

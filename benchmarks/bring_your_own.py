"""Bring-your-own torchvision architectures through every command, with random weights.

    .venv/bin/python benchmarks/bring_your_own.py --out /tmp/byo [--arch resnet50 ...] [--per-class 40]

For each architecture: a random-initialised weights file (safetensors) is written, then the real
commands run on ELPV cells (``--per-class`` of each class): ``edgeft finetune`` (feature
extraction, one epoch), ``export``, ``quantize`` (a wide budget: random weights carry no accuracy
to keep, the plumbing is what is shown), ``validate``, ``predict`` on two cells, and one image
sent to ``edgeft serve``'s ``/v1/predict``. Recorded per architecture: each step's time and
outcome, the family the run recorded, the model type each engine's int8 model was quantized
with, and the fp32 and int8 sizes. Writes benchmarks/results/bring_your_own.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
import torchvision
from rich.console import Console
from safetensors.torch import save_file
from side_by_side import write_table

from edgeft.bench.server_process import ServerProcess
from edgeft.bundle import Bundle
from edgeft.data.elpv import materialise_elpv
from edgeft.targets import host_fingerprint

RESULTS = Path(__file__).parent / "results"
ARCHS = (
    "resnet18",
    "resnet50",
    "efficientnet_b0",
    "mobilenet_v3_large",
    "convnext_tiny",
    "vit_b_16",
)
STEPS = ("finetune", "export", "quantize", "validate", "predict", "serve")
console = Console()


def elpv_subset(root: Path, per_class: int) -> Path:
    """The first ``per_class`` cells of each class of ELPV's training split, as root/<class>/."""
    source = materialise_elpv() / "train"
    for label in sorted(p.name for p in source.iterdir()):
        (root / label).mkdir(parents=True, exist_ok=True)
        for cell in sorted((source / label).iterdir())[:per_class]:
            shutil.copyfile(cell, root / label / cell.name)
    return root


def edgeft(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "edgeft", *args], capture_output=True, text=True, check=False
    )
    return time.perf_counter() - started, done


def served_label(bundle: Path, image: Path) -> str:
    with ServerProcess(bundle) as server:
        status, body = server.request(
            "POST", "/v1/predict", image.read_bytes(), {"Content-Type": "image/png"}
        )
    if status != 200:
        raise RuntimeError(f"serve answered {status}: {body[:200]!r}")
    return json.loads(body)["predictions"][0]["label"]


def run_architecture(arch: str, data: Path, work: Path) -> dict:
    work.mkdir(parents=True)
    torch.manual_seed(0)
    weights = work / f"{arch}.safetensors"
    model = torchvision.models.get_model(arch, weights=None)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    row: dict = {"arch": arch, "seconds": {}, "failed": None}
    cells = sorted((data / "defective").iterdir())[:2]
    commands = {
        "finetune": (
            "finetune", "--model", f"torchvision:{arch}", "--weights", str(weights),
            "--data", str(data), "--strategy", "feature-extraction", "--epochs", "1",
            "--out", str(work / "run"),
        ),
        "export": ("export", str(work / "run"), "--out", str(work / "bundle")),
        "quantize": (
            "quantize", str(work / "bundle"), "--out", str(work / "int8"),
            "--max-accuracy-drop", "60", "--method", "minmax", "--calibration", "32",
        ),
        "validate": ("validate", str(work / "int8")),
        "predict": ("predict", str(work / "int8"), *map(str, cells)),
    }  # fmt: skip
    for step in STEPS:
        console.print(f"[bold]{arch}[/]: {step}")
        if step == "serve":
            started = time.perf_counter()
            try:
                row["served_label"] = served_label(work / "int8", cells[0])
            except (RuntimeError, TimeoutError, OSError) as exc:
                row["failed"] = f"serve: {exc}"
                return row
            row["seconds"][step] = round(time.perf_counter() - started, 1)
            continue
        seconds, done = edgeft(*commands[step])
        row["seconds"][step] = round(seconds, 1)
        if done.returncode != 0:
            row["failed"] = f"{step}: {(done.stderr or done.stdout).strip().splitlines()[-1:]}"
            return row
    run = json.loads((work / "run" / "run.json").read_text())
    row["family"] = run["architecture"]["family"]
    bundle = Bundle.load(work / "int8")
    for entry in bundle.manifest.models:
        row[f"{entry.engine} {entry.precision} MB"] = round(bundle.size_of(entry) / 1e6, 1)
        if entry.precision == "int8":
            row[f"{entry.engine} int8 model type"] = entry.details["model_type"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--arch", nargs="+", default=list(ARCHS))
    parser.add_argument("--per-class", type=int, default=40)
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    data = elpv_subset(args.out / "data", args.per_class)
    rows = [run_architecture(arch, data, args.out / arch) for arch in args.arch]
    host = host_fingerprint()
    result = {"host": host, "per_class": args.per_class, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bring_your_own.json").write_text(json.dumps(result, indent=2))
    columns = [
        "architecture",
        "family",
        "int8 model type (ORT / OV)",
        "fp32 MB",
        "int8 MB (ORT / OV)",
    ]
    columns += [f"{step} s" for step in STEPS]
    table = {}
    for row in rows:
        types = f"{row.get('onnxruntime int8 model type', '-')} / {row.get('openvino int8 model type', '-')}"
        int8 = f"{row.get('onnxruntime int8 MB', '-')} / {row.get('openvino int8 MB', '-')}"
        times = [str(row["seconds"].get(step, "-")) for step in STEPS]
        cells = [row.get("family", "-"), types, str(row.get("onnxruntime fp32 MB", "-")), int8]
        table[row["arch"] + (f" (failed: {row['failed']})" if row["failed"] else "")] = [
            *cells,
            *times,
        ]
    preamble = (
        f"Command: `.venv/bin/python benchmarks/bring_your_own.py --out /tmp/byo "
        f"--per-class {args.per_class}`\n\nHost: {host['cpu']}, {', '.join(host['flags'])}; "
        f"random weights, {2 * args.per_class} ELPV cells, feature extraction for one epoch "
        "(each step is one CLI command; serve: start, one /v1/predict, stop)."
    )
    write_table(
        table,
        columns,
        "bring your own, end to end",
        RESULTS / "bring_your_own.md",
        preamble,
        console,
    )


if __name__ == "__main__":
    main()

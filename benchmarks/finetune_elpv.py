"""The classic transfer-learning comparison on real defect data: MobileNetV2 on ELPV trained from
scratch, as a frozen feature extractor, fully fine-tuned, progressively unfrozen, and with QAT.

    .venv/bin/python benchmarks/finetune_elpv.py --out /tmp/elpv-runs [--full RUN_DIR]

Each row is an ``edgeft finetune`` run (the command is in the table) on the same stratified ELPV
split, one after another so that none shares the CPU with another. ``--full`` reuses a finished
``--strategy full --qat`` run (``edgeft demo`` writes one to edgeft-demo/run-full); a row whose
run folder is complete is reused, a half-done one resumes. "+QAT" is the full run's QAT model,
scored in torch with its fake quantization (int8-simulated); its time adds the QAT pass.
Writes benchmarks/results/elpv_finetune.{json,md}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from side_by_side import write_table

from edgeft.targets import host_fingerprint
from edgeft.train import Recipe, finetune
from edgeft.train.run_folder import MODEL

RESULTS = Path(__file__).parent / "results"
BASE = {"model": "mobilenet_v2", "data": "elpv", "epochs": 12, "patience": 6}
# name -> the recipe's changes from BASE and the same as CLI flags
RUNS: dict[str, tuple[dict[str, Any], str]] = {
    "from scratch": ({"pretrained": False}, "--from-scratch"),  # 12 epochs: the image default
    "feature extraction": (
        {"strategy": "feature-extraction", "epochs": 30, "lr_head": 3e-3},
        "--strategy feature-extraction --epochs 30 --lr-head 3e-3",
    ),
    "full fine-tuning": ({"qat": True, "qat_images": 256}, "--qat --qat-images 256"),
    "progressive unfreezing": ({"strategy": "progressive"}, "--strategy progressive"),
}


def trained(name: str, run_dir: Path, console: Console) -> dict[str, Any]:
    changes, _ = RUNS[name]
    if not (run_dir / MODEL).is_file():
        console.rule(name)
        resume = run_dir.exists()
        finetune(Recipe(**(BASE | changes)), run_dir, resume=resume, console=console)
    return json.loads((run_dir / "metrics.json").read_text())


def row(metrics: dict[str, Any], phase: dict[str, Any], seconds: float) -> list[str]:
    return [
        f"{100 * phase['test']['accuracy']:.2f}",
        f"{phase['test']['macro_f1']:.4f}",
        f"{len(metrics['history'])} ({metrics['best_epoch']})",
        f"{seconds / 60:.1f}",
        f"{metrics['trainable_params']:,}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True, help="folder for the runs")
    parser.add_argument("--full", type=Path, help="a finished full --qat run to reuse")
    args = parser.parse_args()
    console = Console()
    folders = {name: args.out / name.replace(" ", "-") for name in RUNS}
    if args.full:
        folders["full fine-tuning"] = args.full
    metrics = {name: trained(name, folders[name], console) for name in RUNS}
    rows = {name: row(m, m, m["training_seconds"]) for name, m in metrics.items()}
    full = metrics["full fine-tuning"]
    rows["full fine-tuning + QAT (int8-sim)"] = row(
        full, full["qat"], full["training_seconds"] + full["qat"]["seconds"]
    )
    commands = "\n".join(
        f"    edgeft finetune --model {BASE['model']} --data {BASE['data']} {flags} "
        f"--out {folders[name]}"
        for name, (_, flags) in RUNS.items()
    )
    test_cells = sum(c["support"] for c in full["test"]["per_class"].values())
    host = host_fingerprint()
    preamble = (
        f"MobileNetV2 on ELPV (functional/defective, stratified split, {test_cells} test cells), "
        f'trained on {host["cpu"]} ({host["cores"]} cores), one run at a time; "trainable" is '
        f"the most parameters a run trained at once. Made by `python benchmarks/finetune_elpv.py "
        f"--out {args.out}{f' --full {args.full}' if args.full else ''}`:\n\n"
        f"{commands}"
    )
    columns = ("training", "test acc %", "macro-F1", "epochs (best)", "train min", "trainable")
    write_table(rows, columns, "ELPV: transfer learning", RESULTS / "elpv_finetune.md",
                preamble, console)  # fmt: skip
    record = {"host": host, "runs": {n: str(f) for n, f in folders.items()},
              "metrics": metrics}  # fmt: skip
    (RESULTS / "elpv_finetune.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()

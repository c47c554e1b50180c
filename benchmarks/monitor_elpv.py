"""Plant A / Plant B on real cells: a model trained on monocrystalline ELPV cells meets
polycrystalline ones, and the monitoring loop has to notice and fix it.

    .venv/bin/python benchmarks/monitor_elpv.py --out /tmp/elpv-monitor [--rounds 4 --per-round 50]

1. MobileNetV2 (feature extraction) is fine-tuned on mono cells only (their own stratified
   60/20/20 split); poly cells are split into a pool (70%) and a held-out poly test (30%).
2. ``edgeft serve --log`` answers the held-back mono test cells, is restarted (as a box is), then
   answers the poly pool; only the poly inputs are kept. ``edgeft monitor --window W --json``
   reports per window what drifted and the CBPE estimate, set against the realized accuracy.
3. Active learning: ``edgeft monitor --export-uncertain N --strategy S`` picks the pool cells to
   label (S: least-confidence, and diverse: k-centre over the embedding sketch); they are labelled
   from the dataset, ``finetune --init-from`` retrains (mono test stays test), and the retrained
   model's predictions on the rest of the pool pick the next round's cells. The random arm picks
   the same number at random. Accuracy on the poly test is recorded per round.
4. ``edgeft compare`` sets the last active candidate against production on the mono test split
   and the poly test, and pushes it into a repository as ``candidate``.

Writes benchmarks/results/monitor_elpv.{json,md,png}.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from edgeft.bench.server_process import ServerProcess
from edgeft.data import materialise_elpv, stratified_split
from edgeft.export import export_bundle
from edgeft.monitor.active_learning import TO_LABEL, export_for_labelling
from edgeft.monitor.prediction_log import LogLimits, ModelIdentity, PredictionLog
from edgeft.runtime import Predictor
from edgeft.targets import host_fingerprint
from edgeft.train import Recipe, finetune

RESULTS = Path(__file__).parent / "results"
RECIPE = {"strategy": "feature-extraction", "epochs": 30, "lr_head": 3e-3, "model": "mobilenet_v2"}
KEEP_ALL = LogLimits(keep_below=1.0, keep_share=1.0, max_input_bytes=4 * 1024**3)


def edgeft(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeft", *args], capture_output=True, text=True, check=False
    )


def link(files: list[dict[str, str]], folder: Path) -> None:
    """``folder/<label>/<cell>``: symlinks into the materialised ELPV folder."""
    for cell in files:
        target = folder / cell["label"] / Path(cell["path"]).name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.symlink(cell["path"], target)


def split_cells(out: Path) -> dict[str, list[dict[str, str]]]:
    root = materialise_elpv("elpv")
    with open(root / "metadata.csv") as handle:
        cells = [row | {"path": str(root / row["file"])} for row in csv.DictReader(handle)]
    parts: dict[str, list[dict[str, str]]] = {}
    for module, names, fractions in (
        ("mono", ("train", "val", "test"), (0.6, 0.2, 0.2)),
        ("poly", ("pool", "test"), (0.7, 0.3)),
    ):
        group = [c for c in cells if c["module_type"] == module]
        indices = stratified_split([c["label"] for c in group], fractions, seed=0)
        for name, chosen in zip(names, indices, strict=True):
            parts[f"{module}_{name}"] = [group[i] for i in chosen]
    for split in ("train", "val", "test"):
        link(parts[f"mono_{split}"], out / "mono" / split)
    link(parts["poly_test"], out / "poly-test")
    return parts


def accuracy(bundle: Path, cells: list[dict[str, str]]) -> float:
    predictor = Predictor(bundle)
    right = 0
    for start in range(0, len(cells), 32):
        chunk = cells[start : start + 32]
        for cell, p in zip(chunk, predictor.predict([c["path"] for c in chunk]), strict=True):
            right += p.label == cell["label"]
    return right / len(cells)


def stream(server: ServerProcess, cells: list[dict[str, str]]) -> list[dict[str, Any]]:
    """One raw-image POST per cell, as a camera station would; the answer's id and label."""
    sent = []
    for cell in cells:
        status, body = server.request(
            "POST", "/v1/predict", Path(cell["path"]).read_bytes(), {"Content-Type": "image/png"}
        )
        assert status == 200, body
        (prediction,) = json.loads(body)["predictions"]
        sent.append({"id": prediction["id"], "predicted": prediction["label"]} | cell)
    return sent


def monitor_stream(
    out: Path, bundle: Path, parts: dict, window: int, console: Console
) -> dict[str, Any]:
    log = out / "predictions.sqlite"
    log.unlink(missing_ok=True)
    shutil.rmtree(out / "predictions.sqlite.inputs", ignore_errors=True)
    mono = parts["mono_test"][: len(parts["mono_test"]) // window * window]  # whole windows
    poly = parts["poly_pool"]
    common = ["--log", str(log), "--monitor-window", str(window), "--keep-max-mb", "2048"]
    sent = []
    for cells, keep in ((mono, "0"), (poly, "1")):  # only the poly pool's inputs are kept
        options = [*common, "--keep-below", keep, "--keep-share", keep]
        with ServerProcess(bundle, options) as server:
            started = time.perf_counter()
            sent += stream(server, cells)
            console.print(f"streamed {len(cells)} cells in {time.perf_counter() - started:.0f} s")
    result = edgeft("monitor", str(log), "--bundle", str(bundle), "--window", str(window), "--json")
    report = json.loads(result.stdout)
    windows = []
    for i, w in enumerate(report["versions"][0]["windows"]):
        rows = sent[i * window : i * window + w["items"]]
        realized = float(np.mean([r["predicted"] == r["label"] for r in rows]))
        estimate = w["estimated_accuracy"]
        windows.append(
            {
                "window": i + 1,
                "stream": "/".join(sorted({r["module_type"] for r in rows})),
                "items": w["items"],
                "drifted": w["drifted"],
                "estimated": estimate["value"],
                "estimate_reliable": w["estimate_reliable"],
                "interval": [estimate["low"], estimate["high"]],
                "realized": realized,
            }
        )
    return {"exit_code": result.returncode, "windows": windows, "log": str(log), "sent": sent}


def label_folder(folder: Path, labelled: list[dict[str, str]]) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    link(labelled, folder)
    return folder


def pool_log(bundle: Path, pool: list[dict[str, str]], path: Path) -> dict[str, dict[str, str]]:
    """The current model's predictions on the unlabelled pool, logged with every input kept, as
    the server logs them: id -> cell."""
    path.unlink(missing_ok=True)
    shutil.rmtree(path.with_name(path.name + ".inputs"), ignore_errors=True)
    predictor = Predictor(bundle)
    log = PredictionLog(path, KEEP_ALL)
    log.register(ModelIdentity("elpv", "pool", predictor.labels, predictor.bundle.fingerprint))
    by_id = {}
    for start in range(0, len(pool), 32):
        chunk = pool[start : start + 32]
        items = [Path(c["path"]).read_bytes() for c in chunk]
        inputs = predictor.encoder.encode(items)
        outputs = predictor.outputs(inputs)
        ids = log.record(
            "elpv", "pool", outputs, predictor.encoder.statistics(inputs, items), items
        )
        by_id.update(zip(ids, chunk, strict=True))
    log.close()
    return by_id


def chosen_cells(export_dir: Path, by_id: dict[str, dict[str, str]]) -> list[dict[str, str]]:
    with open(export_dir / TO_LABEL) as handle:
        return [by_id[Path(row["input"]).stem] for row in csv.DictReader(handle)]


def learning_curve(
    out: Path, arm: str, mono_run: Path, streamed: dict, parts: dict, rounds: int,
    per_round: int, console: Console,
) -> list[dict[str, Any]]:  # fmt: skip
    """``arm``: an ``--export-uncertain`` strategy, or "random"."""
    pool = list(parts["poly_pool"])
    labelled: list[dict[str, str]] = []
    rng = random.Random(0)
    curve = []
    bundle = out / "mono-bundle"
    for round_number in range(1, rounds + 1):
        if arm == "random":
            picked = rng.sample(pool, per_round)
        elif round_number == 1:
            picked = first_pick(out, arm, streamed, per_round)
        else:
            by_id = pool_log(bundle, pool, out / f"{arm}-pool.sqlite")
            export_dir = out / f"{arm}-export-{round_number}"
            shutil.rmtree(export_dir, ignore_errors=True)
            export_for_labelling(out / f"{arm}-pool.sqlite", export_dir, per_round, arm)
            picked = chosen_cells(export_dir, by_id)
        chosen = {c["path"] for c in picked}
        pool = [c for c in pool if c["path"] not in chosen]
        labelled += picked
        data = label_folder(out / f"{arm}-labels-{round_number}", labelled)
        run = out / f"{arm}-run-{round_number}"
        bundle = out / f"{arm}-bundle-{round_number}"
        started = time.perf_counter()
        labels_file = run / "benchmark-labels.json"
        names = sorted(c["path"] for c in labelled)
        recorded = json.loads(labels_file.read_text()) if labels_file.is_file() else {}
        # A round already trained on exactly these labels (a rerun) is reused, with its time.
        if recorded.get("labels") != names:
            shutil.rmtree(run, ignore_errors=True)
            finetune(Recipe.from_run(mono_run, data), run, console=console)
            export_bundle(run, bundle, overwrite=True)
            recorded = {"labels": names, "seconds": round(time.perf_counter() - started, 1)}
            labels_file.write_text(json.dumps(recorded))
        point = {
            "arm": arm,
            "labels": len(labelled),
            "defective_labels": sum(c["label"] == "defective" for c in labelled),
            "poly_test_accuracy": accuracy(bundle, parts["poly_test"]),
            "mono_test_accuracy": accuracy(bundle, parts["mono_test"]),
            "retrain_and_export_s": recorded.get("seconds"),
        }
        console.print(point)
        curve.append(point)
    return curve


def first_pick(out: Path, strategy: str, streamed: dict, count: int) -> list[dict[str, str]]:
    """What ``edgeft monitor --export-uncertain`` chooses from the server's own log."""
    export_dir = out / f"{strategy}-export-1"
    shutil.rmtree(export_dir, ignore_errors=True)
    result = edgeft(
        "monitor", streamed["log"], "--bundle", str(out / "mono-bundle"), "--export-uncertain",
        str(count), "--strategy", strategy, "--out", str(export_dir), "--json",
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    return chosen_cells(export_dir, {row["id"]: row for row in streamed["sent"]})


def plot(curves: dict[str, list[dict[str, Any]]], start: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for arm, curve in curves.items():
        xs = [0] + [p["labels"] for p in curve]
        ys = [100 * start] + [100 * p["poly_test_accuracy"] for p in curve]
        axes.plot(xs, ys, marker="o", label=arm)
    axes.set_xlabel("poly cells labelled")
    axes.set_ylabel("accuracy on the poly test split (%)")
    axes.set_title("ELPV mono -> poly: labels spent")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=50)
    parser.add_argument(
        "--strategy", nargs="+", default=["least-confidence", "diverse"], help="active arms"
    )
    args = parser.parse_args()
    console = Console()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    parts = split_cells(out)
    console.print({k: len(v) for k, v in parts.items()})

    mono_run = out / "mono-run"
    if not (mono_run / "model.safetensors").is_file():
        shutil.rmtree(mono_run, ignore_errors=True)
        finetune(Recipe(data=str(out / "mono"), **RECIPE), mono_run, console=console)
    bundle = out / "mono-bundle"
    if not bundle.is_dir():
        export_bundle(mono_run, bundle)
    start = {
        "mono_test_accuracy": accuracy(bundle, parts["mono_test"]),
        "poly_test_accuracy": accuracy(bundle, parts["poly_test"]),
    }
    console.print(start)

    streamed = monitor_stream(out, bundle, parts, args.window, console)
    curves = {
        arm: learning_curve(
            out, arm, mono_run, streamed, parts, args.rounds, args.per_round, console
        )
        for arm in (*args.strategy, "random")
    }
    repo = out / "repo"
    shutil.rmtree(repo, ignore_errors=True)
    edgeft("repo", "push", str(bundle), str(repo), "--name", "elpv")
    edgeft("repo", "promote", str(repo), "elpv", "1")
    best = max(args.strategy, key=lambda arm: curves[arm][-1]["poly_test_accuracy"])
    last = out / f"{best}-bundle-{args.rounds}"
    compared = edgeft(
        "compare", str(last), str(bundle), "--data", str(out / "poly-test"), "--json",
        "--push", str(repo), "--name", "elpv",
    )  # fmt: skip
    write_results(args, start, streamed, curves, compared.stdout, console)


def write_results(
    args: argparse.Namespace, start: dict, streamed: dict, curves: dict, compared: str,
    console: Console,
) -> None:  # fmt: skip
    windows = streamed["windows"]
    gaps = {
        kind: [abs(w["estimated"] - w["realized"]) for w in windows if w["stream"] == kind]
        for kind in ("mono", "poly")
    }
    summary = {
        "command": f"python benchmarks/monitor_elpv.py --out OUT --window {args.window} "
        f"--rounds {args.rounds} --per-round {args.per_round} --strategy "
        + " ".join(args.strategy),
        "host": host_fingerprint(),
        "recipe": RECIPE,
        "start": start,
        "monitor_exit_code": streamed["exit_code"],
        "windows": windows,
        "cbpe_abs_error": {
            k: {"mean": float(np.mean(v)), "max": float(np.max(v))} for k, v in gaps.items() if v
        },
        "curves": curves,
        "compare": json.loads(compared) if compared.strip() else None,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "monitor_elpv.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(curves, start["poly_test_accuracy"], RESULTS / "monitor_elpv.png")
    lines = [
        "# ELPV mono -> poly: drift, estimated accuracy, active learning",
        "",
        f"Command: `{summary['command']}`. Host: {summary['host'].get('cpu', '')}.",
        "",
        "| window | stream | items | drifted | estimated (CBPE, 3-sigma) | realized |",
        "|---:|---|---:|---|---|---:|",
        # "unreliable": the monitor's own flag, set when input figures drifted
    ]
    for w in windows:
        low, high = w["interval"]
        lines.append(
            f"| {w['window']} | {w['stream']} | {w['items']} | {', '.join(w['drifted']) or '-'} "
            f"| {100 * w['estimated']:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"
            f"{'' if w['estimate_reliable'] else ' unreliable'} "
            f"| {100 * w['realized']:.1f}% |"
        )
    lines += ["", "| labels | " + " | ".join(curves) + " |", "|---:|" + "---:|" * len(curves)]
    lines.append(
        "| 0 | " + " | ".join(f"{100 * start['poly_test_accuracy']:.1f}%" for _ in curves) + " |"
    )
    for i in range(args.rounds):
        cells = [f"{100 * curves[a][i]['poly_test_accuracy']:.1f}%" for a in curves]
        lines.append(f"| {curves['random'][i]['labels']} | " + " | ".join(cells) + " |")
    (RESULTS / "monitor_elpv.md").write_text("\n".join(lines) + "\n")
    console.print("\n".join(lines))


if __name__ == "__main__":
    main()

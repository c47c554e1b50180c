"""Flip averaging on ELPV: what averaging a model's logits over mirrored views of each cell gives
in test accuracy, and what it costs in latency, for every model of a bundle this host runs.

    .venv/bin/python benchmarks/elpv_flip_average.py --bundle BUNDLE [--rounds 5]

The views are the preprocessed input flipped left-right and top-bottom: what a graph with the
averaging folded in would compute (ELPV cells are square, so the flip commutes with the resize).
Each averaging is scored on the test split (accuracy with its 95% Wilson interval, defect recall,
certain and uncertain cells, mono and poly modules), and its cost is one engine call on a batch
of the views, timed at batch 1 in interleaved rounds (median of round p50s).
Writes benchmarks/results/elpv_flip_average.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from side_by_side import elpv_test_groups, write_table

from edgeft.bench import measure_latency
from edgeft.bench.report_sections import accuracy_of
from edgeft.bundle import Bundle
from edgeft.data import load_dataset
from edgeft.evaluation.encoded_splits import encode_split
from edgeft.evaluation.slices import slice_accuracy
from edgeft.runtime.engines import open_session
from edgeft.runtime.model_choice import int8_mismatch
from edgeft.runtime.scoring import score_logits
from edgeft.targets.host import host_fingerprint

RESULTS = Path(__file__).parent / "results"
console = Console()

# name -> the (H axis, W axis) flips averaged; (False, False) is the cell as it is
VIEWS = {
    "none": [(False, False)],
    "left-right": [(False, False), (False, True)],
    "four flips": [(False, False), (False, True), (True, False), (True, True)],
}


def flipped(batch: np.ndarray, flips: tuple[bool, bool]) -> np.ndarray:
    axes = tuple(axis for axis, on in zip((-2, -1), flips, strict=True) if on)
    return np.ascontiguousarray(np.flip(batch, axes)) if axes else batch


def averaged_logits(session, batches: list[dict[str, np.ndarray]], views: list) -> np.ndarray:
    """Per batch, every view of it in one engine call, then the mean of the views' logits."""
    out = []
    for batch in batches:
        ((name, pixels),) = batch.items()
        stacked = np.concatenate([flipped(pixels, v) for v in views])
        logits = session.run({name: stacked})[0]
        out.append(logits.reshape(len(views), len(pixels), -1).mean(axis=0))
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    bundle = Bundle.load(args.bundle)
    dataset = load_dataset("elpv")
    test = encode_split(bundle, dataset, "test")
    groups = elpv_test_groups(dataset)
    models = [m for m in bundle.manifest.models if not (m.precision == "int8" and int8_mismatch(m))]
    rows: dict[str, dict] = {}
    sessions = {}
    for entry in models:
        session = open_session(entry.engine, bundle.path_of(entry), precision=entry.precision)
        for view, flips in VIEWS.items():
            name = f"{entry.engine} {entry.precision}, {view}"
            logits = averaged_logits(session, test.batches, flips)
            scores = score_logits(logits, test)
            accuracy = accuracy_of(scores)
            assert test.labels is not None
            rows[name] = {
                "accuracy": accuracy.percent,
                "interval": [accuracy.low, accuracy.high],
                "defect_recall": 100 * scores["per_class"]["defective"]["recall"],
            } | {
                group: 100 * cells["accuracy"]
                for group, cells in slice_accuracy(logits, test.labels, groups).items()
            }
            sessions[name] = (session, len(flips))
            console.print(name, rows[name])
    one = next(iter(test.batches[0].values()))[:1]
    input_name = next(iter(test.batches[0]))
    p50s: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, (session, views) in sessions.items():
            inputs = {input_name: np.ascontiguousarray(np.repeat(one, views, axis=0))}
            p50s[name].append(measure_latency(session, inputs, duration_s=args.seconds).p50_ms)
    for name, values in p50s.items():
        rows[name]["p50_ms"] = float(np.median(values))
        rows[name]["round_p50s_ms"] = values
    host = host_fingerprint()
    results = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "host": host,
        "bundle": str(args.bundle),
        "test_cells": len(test),
        "group_sizes": {group: int(mask.sum()) for group, mask in groups.items()},
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "elpv_flip_average.json").write_text(json.dumps(results, indent=2) + "\n")
    sizes = results["group_sizes"]
    preamble = (
        f"# Flip averaging on ELPV\n\n`{results['command']}` on {host['cpu']} ({host['cores']} "
        f"cores; {', '.join(host['flags'])}). {len(test)} test cells: {sizes['certain']} certain "
        f"(defect probability 0 or 1), {sizes['uncertain']} uncertain (1/3, 2/3), "
        f"{sizes['mono']} mono and {sizes['poly']} poly. Accuracy in %, with its 95% Wilson "
        "interval; latency: one engine call on the views of one cell (batch 1, 2 or 4), median "
        f"of {args.rounds} interleaved round p50s."
    )
    columns = ["model, views averaged", "test acc", "95% CI", "defect recall", "certain",
               "uncertain", "mono", "poly", "p50 ms"]  # fmt: skip
    table = {
        name: [
            f"{r['accuracy']:.2f}",
            f"{r['interval'][0]:.1f}-{r['interval'][1]:.1f}",
            *(f"{r[k]:.2f}" for k in ("defect_recall", "certain", "uncertain", "mono", "poly")),
            f"{r['p50_ms']:.2f}",
        ]
        for name, r in rows.items()
    }
    write_table(
        table, columns, "flip averaging", RESULTS / "elpv_flip_average.md", preamble, console
    )


if __name__ == "__main__":
    main()

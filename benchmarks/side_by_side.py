"""What the benchmark scripts share: batch-1 latency of several models measured in interleaved
rounds (so drift on a noisy host hits them all alike), and one table written for people (Markdown)
and shown in the terminal."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from edgeft.bench import measure_latency
from edgeft.bundle import Bundle
from edgeft.data import ClassificationDataset
from edgeft.evaluation.slices import dataset_slices
from edgeft.runtime.engines import EngineSession, open_session
from edgeft.runtime.scoring import EncodedSplit


def run_arguments() -> argparse.Namespace:
    """``--run RUN_DIR --out DIR [--rounds 5] [--seconds 2.0]``: what the ELPV int8 benchmarks
    take (a fine-tuned run, a work folder, the interleaved timing's rounds and their length)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    return parser.parse_args()


def interleaved_p50_ms(
    sessions: Mapping[str, EngineSession],
    inputs: Mapping[str, np.ndarray],
    rounds: int,
    seconds: float,
) -> dict[str, list[float]]:
    """Per model, the p50 of each round; report the median of these."""
    p50s: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, session in sessions.items():
            p50s[name].append(measure_latency(session, inputs, duration_s=seconds).p50_ms)
    return p50s


def add_batch1_latency(
    rows: dict[str, dict],
    models: Mapping[str, tuple[str, Path, str]],
    data: EncodedSplit,
    rounds: int,
    seconds: float,
) -> None:
    """Time every model (name -> engine, file, precision) on the first item of ``data`` and add
    ``p50_ms_batch1`` (median of the round p50s) and the round p50s to its row."""
    sessions = {name: open_session(e, p, precision=pr) for name, (e, p, pr) in models.items()}
    one = {k: v[:1] for k, v in data.batches[0].items()}
    p50s = interleaved_p50_ms(sessions, one, rounds, seconds)
    for name in models:
        rows[name]["p50_ms_batch1"] = float(np.median(p50s[name]))
        rows[name]["round_p50s_ms"] = p50s[name]


def int8_choices(bundle: Bundle) -> dict[str, dict[str, object]]:
    """Per engine, what ``edgeft quantize`` settled on: setting, layers kept in float, val drop."""
    return {
        m.engine: {k: m.details[k] for k in ("setting", "kept_float", "val_drop_points")}
        for m in bundle.manifest.models
        if m.precision == "int8"
    }


def elpv_test_groups(dataset: ClassificationDataset) -> dict[str, np.ndarray]:
    """Masks over ELPV's test split: ``certain`` cells (defect probability 0 or 1), ``uncertain``
    ones (1/3, 2/3), and the ``mono`` and ``poly`` module types: ``edgeft eval``'s slices of the
    folder's metadata.csv, regrouped."""
    slices = dataset_slices(dataset, "test")
    certain = slices["defect_probability=0"] | slices["defect_probability=1"]
    return {"certain": certain, "uncertain": ~certain, "mono": slices["module_type=mono"],
            "poly": slices["module_type=poly"]}  # fmt: skip


def write_table(
    rows: Mapping[str, Sequence[str]],
    columns: Sequence[str],
    title: str,
    path: Path,
    preamble: str,
    console: Console,
) -> None:
    """``rows``: model name -> formatted cells, one per column after the first ("model")."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column == columns[0] else "right")
    lines = ["| " + " | ".join(columns) + " |", "|---" + "|---:" * (len(columns) - 1) + "|"]
    for name, cells in rows.items():
        table.add_row(name, *cells)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    console.print(table)
    path.write_text(f"{preamble}\n\n" + "\n".join(lines) + "\n")

"""What the benchmark scripts share: batch-1 latency of several models measured in interleaved
rounds (so drift on a noisy host hits them all alike), and one table written for people (Markdown)
and shown in the terminal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from edgeft.bench import measure_latency
from edgeft.runtime.engines import EngineSession


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

"""``write_report``: one self-contained HTML page (inline CSS and SVG plots, no network) from
rows of the results database, so people can compare models and boxes at a glance."""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeft.atomic import write_text_atomically
from edgeft.bench.report_sections import (
    CONFIDENCE,
    Accuracy,
    accuracy_of,
    evaluation_sections,
    model_key,
    pyplot,
    svg_of,
)
from edgeft.bench.run import slower_int8
from edgeft.errors import EdgeftError

if TYPE_CHECKING:
    from edgeft.evaluation.bundle_eval import ModelScores

PAGE_CSS = """  # the look every edgeft page shares
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #ddd; padding: .25rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; white-space: nowrap; } th { background: #f4f4f4; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; } .plots figure { margin: 0; }
figcaption { color: #555; font-size: .9rem; } .muted { color: #666; }
.warning { background: #fff4e5; border-left: 5px solid #e8590c; padding: .6rem 1rem;
           font-weight: 600; margin: .5rem 0; }
table.accuracy tr.engine td { border-top: 2px solid #999; }
"""
_SHOWN = (
    ("model", "model", "{}"), ("batch", "batch", "{}"), ("p50 ms", "p50_ms", "{:.2f}"),
    ("p90 ms", "p90_ms", "{:.2f}"), ("p99 ms", "p99_ms", "{:.2f}"), ("std ms", "std_ms", "{:.2f}"),
    ("items/s", "throughput_ips", "{:.0f}"), ("items/s (tput mode)", "throughput_mode_ips", "{:.0f}"),
    ("cold start ms", "cold_start_ms", "{:.0f}"), ("peak MB", "peak_rss_mb", "{:.0f}"),
    ("size MB", "size_mb", "{:.2f}"), ("val acc %", "accuracy", "{:.1%}"),
)  # fmt: skip


MIN_ACCURACY_SPAN = 4.0  # points on the accuracy axis, so a 0.5-point gap does not look wide
ACCURACY_PADDING = 1.2  # the axis spans the points' range times this
MARKERS = "os^Dvp*"  # one a target
Point = tuple[dict[str, Any], Accuracy]


def _name(row: dict[str, Any]) -> str:
    return f"{row['target']} · {row['model']}"


def _scored(
    single: list[dict[str, Any]], evaluation: Sequence[ModelScores] | None, split: str
) -> tuple[str, list[Point]]:
    """The accuracy axis's label and the rows on it: the evaluation's accuracy with its interval
    where given (models it scored), else the validation accuracy quantize recorded."""
    if evaluation:
        measured = {model_key(m): accuracy_of(m.scores) for m in evaluation}
        keys = [(r, (r["engine"], r["precision"], r["variant"])) for r in single]
        points = [(r, measured[key]) for r, key in keys if key in measured]
        return f"{split} accuracy (%, {CONFIDENCE:.0%} interval)", points
    recorded = [(r, 100 * r["accuracy"]) for r in single if r["accuracy"] is not None]
    return "validation accuracy (%)", [(r, Accuracy(a, a, a, 0)) for r, a in recorded]


def _accuracy_limits(points: list[Point]) -> tuple[float, float]:
    low, high = min(a.low for _, a in points), max(a.high for _, a in points)
    span = min(max((high - low) * ACCURACY_PADDING, MIN_ACCURACY_SPAN), 100.0)
    bottom = min(max((low + high - span) / 2, 0.0), 100.0 - span)
    return bottom, bottom + span


def _scatter(label: str, points: list[Point]) -> str:
    """Accuracy against p50 latency, error bars for the interval and a legend (not labels on
    the points, which overlap when models are close)."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 4))
    markers = dict(zip(sorted({r["target"] for r, _ in points}), MARKERS, strict=False))
    for i, (row, accuracy) in enumerate(points):
        interval = [[accuracy.percent - accuracy.low], [accuracy.high - accuracy.percent]]
        errors = interval if accuracy.items else None  # validation accuracy has no interval
        axis.errorbar(row["p50_ms"], accuracy.percent, yerr=errors, fmt=markers[row["target"]],
                      color=f"C{i}", capsize=3, label=_name(row))  # fmt: skip
    axis.set_ylim(*_accuracy_limits(points))
    axis.set_xlim(left=0)  # latency from zero, so a model twice as slow sits twice as far
    axis.set_xlabel("p50 latency (ms)")
    axis.set_ylabel(label)
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=9, frameon=False)
    svg = svg_of(figure)
    plt.close(figure)
    return svg


def _plots(
    rows: list[dict[str, Any]], evaluation: Sequence[ModelScores] | None = None, split: str = "test"
) -> list[tuple[str, str]]:
    """(caption, inline SVG) of latency, accuracy against latency, and size, at the smallest batch."""
    plt = pyplot()
    single = [r for r in rows if r["batch"] == min(x["batch"] for x in rows)]
    out = []

    figure, axis = plt.subplots(figsize=(7.5, 0.45 * len(single) + 1.2))
    axis.boxplot([r["samples_ms"] for r in single], orientation="horizontal", showfliers=False)
    axis.set_yticks(range(1, len(single) + 1), [_name(r) for r in single])
    axis.set_xlabel(f"latency at batch {single[0]['batch']} (ms)")
    axis.grid(axis="x", alpha=0.3)
    out.append(("Latency distribution (boxes: p25-p75, whiskers: 1.5 IQR)", svg_of(figure)))
    plt.close(figure)

    label, points = _scored(single, evaluation, split)
    if points:
        out.append(
            ("Accuracy vs latency (marker = target, colour = model)", _scatter(label, points))
        )

    sizes = {r["model"]: r["size_mb"] for r in single}
    figure, axis = plt.subplots(figsize=(5.5, 0.4 * len(sizes) + 1.2))
    axis.barh(list(sizes), list(sizes.values()), color="#4c78a8")
    axis.set_xlabel("size on disk (MB)")
    axis.invert_yaxis()
    out.append(("Model size", svg_of(figure)))
    plt.close(figure)
    return out


def _table(rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for title, _, _ in _SHOWN)
    body = []
    for row in rows:
        cells = []
        for _, key, fmt in _SHOWN:
            value = row[key]
            cells.append(f"<td>{html.escape(fmt.format(value)) if value is not None else '-'}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def write_report(
    rows: list[dict[str, Any]],
    out: str | Path,
    title: str = "edgeft benchmarks",
    evaluation: Sequence[ModelScores] | None = None,
    split: str = "test",
) -> Path:
    """Rows from ``ResultsStore.results(samples=True)`` -> an HTML file (written atomically).

    ``evaluation`` (``evaluate_bundle`` on ``split``) adds accuracy with its interval, per-class
    recall and confusion matrices, and puts that accuracy on the accuracy-vs-latency plot.
    """
    if not rows:
        raise EdgeftError("no benchmark results to report; run `edgeft bench BUNDLE` first")
    runs: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        runs[row["run_id"]].append(row)
    sections = []
    for run_id, run_rows in runs.items():
        first = run_rows[0]
        sections.append(
            f"<h2>Run {run_id}: target {html.escape(first['target'])}</h2>"
            f"<p class=muted>{html.escape(first['created'])} · {html.escape(first['cpu'])} · "
            f"bundle {html.escape(first['bundle'])}</p>{_table(run_rows)}"
        )
    warnings = "".join(
        f"<p class=warning role=alert>⚠ {html.escape(warning)}</p>"
        for run_rows in runs.values()
        for warning in slower_int8(run_rows)
    )
    accuracy = evaluation_sections(evaluation, split) if evaluation else ""
    figures = "".join(
        f"<figure>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>"
        for caption, svg in _plots(rows, evaluation, split)
    )
    page = (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{PAGE_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p class=muted>{len(runs)} run(s), {len(rows)} rows. Latency is per call; "
        "throughput mode runs the engine's parallel requests (OpenVINO streams).</p>"
        f"{warnings}{accuracy}<h2>Latency, accuracy and size</h2><div class=plots>{figures}</div>"
        f"{''.join(sections)}</body></html>"
    )
    out = Path(out)
    write_text_atomically(out, page)
    return out


def screenshot(page: Path, png: Path, chromium: str = "chromium") -> Path:
    """Render the page in headless Chromium (Debian's package) to check it displays."""
    import shutil
    import subprocess
    import tempfile

    binary = shutil.which(chromium)
    if binary is None:
        raise EdgeftError("chromium is not installed (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--window-size=1200,1600",
             f"--screenshot={png.resolve()}", page.resolve().as_uri()],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    if not png.is_file() or png.stat().st_size == 0:
        raise EdgeftError(f"chromium wrote no screenshot to {png}")
    return png


def report_stored_runs(
    out: Path,
    run_ids: Sequence[int] = (),
    db: Path | None = None,
    screenshot_png: Path | None = None,
) -> tuple[Path, Path | None]:
    """``edgeft report``: the page of the stored runs ``run_ids`` (default: all) and, with
    ``screenshot_png``, its rendering in Chromium."""
    from edgeft.bench.store import ResultsStore

    page = write_report(ResultsStore(db).results(run_ids, samples=True), out)
    return page, screenshot(page, screenshot_png) if screenshot_png is not None else None

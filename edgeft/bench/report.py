"""``write_report``: one self-contained HTML page (inline CSS and SVG plots, no network) from
rows of the results database, so people can compare models and boxes at a glance."""

from __future__ import annotations

import html
import io
from collections import defaultdict
from pathlib import Path
from typing import Any

from edgeft.errors import EdgeftError

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #ddd; padding: .25rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; } th { background: #f4f4f4; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; } .plots figure { margin: 0; }
figcaption { color: #555; font-size: .9rem; } .muted { color: #666; }
"""
_SHOWN = (
    ("model", "model", "{}"), ("batch", "batch", "{}"), ("p50 ms", "p50_ms", "{:.2f}"),
    ("p90 ms", "p90_ms", "{:.2f}"), ("p99 ms", "p99_ms", "{:.2f}"), ("std ms", "std_ms", "{:.2f}"),
    ("items/s", "throughput_ips", "{:.0f}"), ("items/s (tput mode)", "throughput_mode_ips", "{:.0f}"),
    ("cold start ms", "cold_start_ms", "{:.0f}"), ("peak MB", "peak_rss_mb", "{:.0f}"),
    ("size MB", "size_mb", "{:.2f}"), ("val acc %", "accuracy", "{:.1%}"),
)  # fmt: skip


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _plots(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    single = [r for r in rows if r["batch"] == min(x["batch"] for x in rows)]
    names = [f"{r['target']} · {r['model']}" for r in single]
    out = []

    figure, axis = plt.subplots(figsize=(7.5, 0.45 * len(single) + 1.2))
    axis.boxplot([r["samples_ms"] for r in single], orientation="horizontal", showfliers=False)
    axis.set_yticks(range(1, len(single) + 1), names)
    axis.set_xlabel(f"latency at batch {single[0]['batch']} (ms)")
    axis.grid(axis="x", alpha=0.3)
    out.append(("Latency distribution (boxes: p25-p75, whiskers: 1.5 IQR)", _svg(figure)))
    plt.close(figure)

    scored = [r for r in single if r["accuracy"] is not None]
    if scored:
        figure, axis = plt.subplots(figsize=(5.5, 4))
        markers = dict(zip(sorted({r["target"] for r in scored}), "os^Dvp*", strict=False))
        for r in scored:
            axis.scatter(r["p50_ms"], 100 * r["accuracy"], marker=markers[r["target"]], s=50)
            axis.annotate(r["model"], (r["p50_ms"], 100 * r["accuracy"]), fontsize=7,
                          xytext=(4, 3), textcoords="offset points")  # fmt: skip
        axis.set_xlabel("p50 latency (ms)")
        axis.set_ylabel("validation accuracy (%)")
        axis.grid(alpha=0.3)
        out.append(("Accuracy vs latency (marker = target)", _svg(figure)))
        plt.close(figure)

    sizes = {r["model"]: r["size_mb"] for r in single}
    figure, axis = plt.subplots(figsize=(5.5, 0.4 * len(sizes) + 1.2))
    axis.barh(list(sizes), list(sizes.values()), color="#4c78a8")
    axis.set_xlabel("size on disk (MB)")
    axis.invert_yaxis()
    out.append(("Model size", _svg(figure)))
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
    rows: list[dict[str, Any]], out: str | Path, title: str = "edgeft benchmarks"
) -> Path:
    """Rows from ``ResultsStore.results(samples=True)`` -> an HTML file (written atomically)."""
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
    figures = "".join(
        f"<figure>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>"
        for caption, svg in _plots(rows)
    )
    page = (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p class=muted>{len(runs)} run(s), {len(rows)} rows. Latency is per call; "
        "throughput mode runs the engine's parallel requests (OpenVINO streams).</p>"
        f"<div class=plots>{figures}</div>{''.join(sections)}</body></html>"
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(out)
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

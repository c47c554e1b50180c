"""``edgeft monitor --html``: every figure of every analysed version over its windows, with
its learned band, in one self-contained page."""

from __future__ import annotations

import time
from html import escape

from edgeft.monitor.analysis import MonitorReport, VersionReport
from edgeft.monitor.charts import band_chart

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
.charts { display: flex; flex-wrap: wrap; gap: 8px; }
.alert { color: #c0392b; font-weight: bold; }
td, th { padding: 2px 8px; text-align: left; }
"""


def render_report(report: MonitorReport) -> str:
    sections = [_version_section(v) for v in report.versions]
    notes = "".join(f"<li>{_when(t)}: {escape(n)}</li>" for t, n in report.notes)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>edgeft monitor</title>"
        f"<style>{STYLE}</style></head><body><h1>edgeft monitor: {escape(report.log)}</h1>"
        f"<p>windows of {escape(report.window)}; "
        f"{'<span class=alert>drift found</span>' if report.drifted else 'no drift'}</p>"
        f"{''.join(sections)}{f'<h2>Notes</h2><ul>{notes}</ul>' if notes else ''}</body></html>"
    )


def _version_section(version: VersionReport) -> str:
    title = f"{escape(version.model)} version {escape(version.version)}"
    damage = (
        f"<p class=alert>{version.damaged} damaged row(s) of the log skipped: "
        f"{escape('; '.join(version.damage))}</p>"
        if version.damaged
        else ""
    )
    if version.skipped:
        return f"<h2>{title}</h2>{damage}<p>not analysed: {escape(version.skipped)}</p>"
    windows = version.windows
    names = list(dict.fromkeys(f.name for w in windows for f in w.figures))
    charts = []
    estimate = [w.estimate.value if w.estimate else None for w in windows]
    charts.append(
        band_chart(
            "estimated accuracy (CBPE, 3-sigma interval); realized where labelled",
            estimate,
            [w.estimate.low if w.estimate else None for w in windows],
            [w.estimate.high if w.estimate else None for w in windows],
        )
    )
    if any(w.realized is not None for w in windows):
        charts.append(band_chart("realized accuracy (feedback)", [w.realized for w in windows]))
    for name in names:
        figures = [next((f for f in w.figures if f.name == name), None) for w in windows]
        charts.append(
            band_chart(
                name,
                [f.value if f else None for f in figures],
                [f.band.low if f and f.band else None for f in figures],
                [f.band.high if f and f.band else None for f in figures],
                [bool(f and f.alert) for f in figures],
            )
        )
    rows = "".join(
        f"<tr><td>{i + 1}</td><td>{_when(w.start)}</td><td>{w.items}</td>"
        f"<td>{'' if w.estimate is None else f'{w.estimate.value:.3f}'}"
        f"{'' if w.estimate_reliable else ' (inputs drifted: unreliable)'}</td>"
        f"<td>{'' if w.realized is None else f'{w.realized:.3f} ({w.labelled})'}</td>"
        f"<td class=alert>{escape(', '.join(w.drifted))}</td></tr>"
        for i, w in enumerate(windows)
    )
    return (
        f"<h2>{title}</h2><p>bundle {escape(version.bundle or '')}</p>{damage}"
        f"<div class=charts>{''.join(charts)}</div>"
        "<table><tr><th>window</th><th>from</th><th>items</th><th>estimated accuracy</th>"
        f"<th>realized (labelled)</th><th>drifted</th></tr>{rows}</table>"
    )


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))

"""``GET /``: one self-contained page for the person standing at the box.

Which models and versions serve, how many requests and errors, the latest drift figures and the
estimated accuracy over time, and thumbnails of the latest low-confidence inputs. Nothing is
loaded from elsewhere (inline CSS, SVG and images), so it works on a closed factory network.
"""

from __future__ import annotations

import base64
import io
import sqlite3
import time
from html import escape

from PIL import Image

from edgeft import __version__
from edgeft.errors import EdgeftError
from edgeft.monitor.charts import band_chart
from edgeft.monitor.drift import DriftFigure
from edgeft.monitor.prediction_log import KeptInput, PredictionLog, latest_kept
from edgeft.serve.live_monitor import LiveMonitor
from edgeft.serve.models import ServedModels
from edgeft.serve.prometheus import ServerMetrics

UNRELIABLE = " <span class=alert>(the inputs drifted: the estimate is unreliable)</span>"
THUMBNAILS = 8
THUMBNAIL_PX = 96
REFRESH_S = 30

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1em; }
td, th { padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: left; }
.alert { color: #c0392b; font-weight: bold; } .ok { color: #1e7b34; }
.thumbs { display: flex; flex-wrap: wrap; gap: 10px; }
.thumbs figure { margin: 0; font-size: 12px; width: 110px; }
.span { font-size: 12px; color: #666; margin-top: 0; }
"""


def render_status_page(
    models: ServedModels,
    metrics: ServerMetrics,
    monitor: LiveMonitor | None,
    prediction_log: PredictionLog | None,
) -> str:
    sections = [
        _models_table(models),
        _request_counts(metrics),
        _monitoring(models, monitor, prediction_log),
    ]
    if prediction_log is not None:
        try:
            kept = latest_kept(prediction_log.path, THUMBNAILS, prediction_log.limits.keep_below)
            sections.append(_thumbnails(kept))
        except (EdgeftError, OSError, sqlite3.Error) as exc:
            metrics.record_accessory_failure("prediction_log", f"kept inputs unreadable: {exc}")
    sections.append(_accessories(metrics))
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<meta http-equiv='refresh' content='{REFRESH_S}'><title>edgeft</title>"
        f"<style>{STYLE}</style></head><body><h1>edgeft {escape(__version__)}</h1>"
        f"<p>as of {time.strftime('%Y-%m-%d %H:%M:%S')}</p>{''.join(sections)}</body></html>"
    )


def _accessories(metrics: ServerMetrics) -> str:
    """What failed beside serving (the prediction log, the live monitor), latest reason each."""
    problems = metrics.accessory_problems
    if not problems:
        return "<h2>Accessories</h2><p class=ok>no failures</p>"
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td class=alert>{escape(why)}</td></tr>"
        for name, why in sorted(problems.items())
    )
    return f"<h2>Accessories</h2><table><tr><th>accessory</th><th>latest failure</th></tr>{rows}</table>"


def _models_table(models: ServedModels) -> str:
    rows = []
    for name, slot in sorted(models.slots.items()):
        serving = slot.serving
        state = "ready" if slot.not_ready_reason is None else slot.not_ready_reason
        model = serving.predictor.model if serving else None
        sides = (("canary", slot.canary), ("shadow", slot.shadow))
        side = ", ".join(f"{m.version} ({role})" for role, m in sides if m is not None)
        rows.append(
            f"<tr><td class=model>{escape(name)}</td>"
            f"<td class=version>{escape(serving.version) if serving else ''}</td>"
            f"<td>{escape(state)}</td><td>{escape(model.label) if model else ''}</td>"
            f"<td>{escape(side)}</td></tr>"
        )
    return (
        "<h2>Models</h2><table><tr><th>model</th><th>version</th><th>state</th>"
        f"<th>engine</th><th>canary / shadow</th></tr>{''.join(rows)}</table>"
    )


def _request_counts(metrics: ServerMetrics) -> str:
    by_code: dict[str, float] = {}
    for family in metrics.requests.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                code = sample.labels["code"]
                by_code[code] = by_code.get(code, 0) + sample.value
    total = sum(by_code.values())
    errors = sum(v for code, v in by_code.items() if int(code) >= 400)
    detail = ", ".join(f"{code}: {int(v)}" for code, v in sorted(by_code.items()))
    return (
        f"<h2>Requests</h2><p><span class=requests>{int(total)}</span> "
        f"{_plural(total, 'request')}, <span class=errors>{int(errors)}</span> "
        f"{_plural(errors, 'error')} ({escape(detail or 'none yet')})</p>"
    )


def _plural(count: float, noun: str) -> str:
    if int(count) == 1:
        return noun
    return noun[:-2] + "es" if noun.endswith("is") else noun + "s"


def _monitoring(
    models: ServedModels, monitor: LiveMonitor | None, prediction_log: PredictionLog | None
) -> str:
    if prediction_log is None or monitor is None:
        return "<h2>Monitoring</h2><p>off: start the server with --log DB to monitor drift</p>"
    parts = ["<h2>Monitoring</h2>"]
    for name in sorted(models.slots):
        history = list(monitor.history.get(name, ()))
        if name in monitor.problems:
            parts.append(f"<p>{escape(name)}: not monitored: {escape(monitor.problems[name])}</p>")
            continue
        if not history:
            parts.append(
                f"<p>{escape(name)}: no window analysed yet (every {monitor.interval_s:g} s)</p>"
            )
            continue
        latest = history[-1]
        rows = "".join(
            f"<tr><td>{escape(f.name)}</td>"
            f"<td>{'' if f.value is None else _number(f.value)}</td>"
            f"<td>{_band(f)}</td><td class={'alert' if f.alert else 'ok'}>{f.status}</td></tr>"
            for f in latest.window.figures
        )
        estimates = [s.window.estimate for s in history]
        chart = band_chart(
            "estimated accuracy over time",
            [e.value if e else None for e in estimates],
            [e.low if e else None for e in estimates],
            [e.high if e else None for e in estimates],
        )
        estimate = latest.window.estimate
        span = (
            f"{len(history)} {_plural(len(history), 'analysis')}, "
            f"{_clock(history[0].time)} to {_clock(latest.time)}, every {monitor.interval_s:g} s"
        )
        parts.append(
            f"<h3>{escape(name)} version {escape(latest.version)}</h3>"
            f"<p>latest window: {latest.window.items} predictions; estimated accuracy "
            f"<span class=estimate>{'' if estimate is None else f'{estimate.value:.3f}'}</span>"
            f"{'' if latest.window.estimate_reliable else UNRELIABLE}</p>"
            f"{chart}<p class=span>{span}</p>"
            "<table class=figures><tr><th>figure</th><th>value</th><th>band</th>"
            f"<th>status</th></tr>{rows}</table>"
        )
    return "".join(parts)


def _band(figure: DriftFigure) -> str:
    """The learned band; one-sided ones as "at most" / "at least"."""
    if figure.band is None:
        return ""
    low, high = figure.band.low, figure.band.high
    if low is None and high is None:
        return ""
    if low is None:
        return f"at most {_number(high)}" if high is not None else ""
    if high is None:
        return f"at least {_number(low)}"
    return f"{_number(low)} to {_number(high)}"


def _number(value: float) -> str:
    """Four significant digits, without an exponent for everyday magnitudes (27780, not
    2.778e+04)."""
    if 1e4 <= abs(value) < 1e9:
        return f"{value:.0f}"
    return f"{value:.4g}"


def _clock(seconds: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(seconds))


def _thumbnails(kept: list[KeptInput]) -> str:
    figures = []
    for item in kept:
        picture = _thumbnail(item)
        caption = f"{escape(item.label)} {item.confidence:.2f}<br>{escape(item.id[:8])}"
        figures.append(f"<figure>{picture}<figcaption>{caption}</figcaption></figure>")
    body = "".join(figures) or "<p>none kept yet</p>"
    return f"<h2>Latest low-confidence inputs</h2><div class=thumbs>{body}</div>"


def _thumbnail(item: KeptInput) -> str:
    try:
        if item.file.suffix == ".txt":
            return f"<blockquote>{escape(item.file.read_text(encoding='utf-8')[:200])}</blockquote>"
        with Image.open(item.file) as image:
            image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="PNG")
    except (OSError, ValueError) as exc:
        return f"<p>({escape(str(exc))})</p>"
    data = base64.b64encode(buffer.getvalue()).decode()
    return f"<img alt='{escape(item.id)}' src='data:image/png;base64,{data}'>"

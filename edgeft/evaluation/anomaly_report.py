"""``edgeft eval --html`` for an anomaly bundle: one self-contained page (inline CSS, SVG and
PNG, nothing fetched) with each model's figures, the score histogram of good and defective
parts with the threshold, and grids of defect maps over the parts: the best hits, the escapes
and the false rejects, so a person sees what the model flags and what it misses."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import numpy as np

from edgeft.atomic import write_text_atomically
from edgeft.bench.report import PAGE_CSS
from edgeft.bench.report_sections import pyplot, svg_of
from edgeft.evaluation.anomaly_eval import AnomalyEvaluation
from edgeft.runtime.anomaly.detector import AnomalyDetector

GRID = 6  # parts per grid
_CSS = (
    PAGE_CSS
    + """
.grid { display: flex; flex-wrap: wrap; gap: .8rem; } .grid figure { margin: 0; width: 170px; }
.grid img { width: 170px; height: auto; display: block; }
figcaption { font-size: .85rem; overflow-wrap: anywhere; }
"""
)
_FIGURES = (("image AUROC", "image_auroc"), ("pixel AUROC", "pixel_auroc"), ("PRO", "pro"),
            ("F1", "f1"), ("false-reject", "false_reject"), ("escape", "escape"))  # fmt: skip


def _cell(value: Any) -> str:
    return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _table(heads: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _histogram(raw: np.ndarray, defective: np.ndarray, cut: float, threshold: float) -> str:
    """Raw scores (in good-part spreads) of good and defective parts, and the threshold."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7.5, 3.4))
    bins = np.linspace(float(raw.min()), float(np.percentile(raw, 99.5)), 40)
    axis.hist(np.clip(raw[~defective], None, bins[-1]), bins, alpha=0.6, label="good parts")
    if defective.any():
        axis.hist(np.clip(raw[defective], None, bins[-1]), bins, alpha=0.6, label="defective parts")
    axis.axvline(cut, color="black", linestyle="--", label=f"threshold {threshold:.2f}")
    axis.set(
        xlabel="raw score (spreads of good parts; the last bin holds the rest)", ylabel="parts"
    )
    axis.legend()
    figure.tight_layout()
    svg = svg_of(figure)
    plt.close(figure)
    return svg


def _grid(title: str, note: str, detector: AnomalyDetector, paths: list[Path]) -> str:
    if not paths:
        return f"<h2>{html.escape(title)}</h2><p class=muted>none</p>"
    figures = []
    for path, result in zip(paths, detector.detect(paths), strict=True):
        png = base64.b64encode(detector.overlay_png(path, result)).decode("ascii")
        caption = f"{path.parent.name}/{path.name}: {result.verdict}, score {result.score:.3f}"
        figures.append(
            f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{png}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    return (
        f"<h2>{html.escape(title)}</h2><p class=muted>{html.escape(note)}</p>"
        f"<div class=grid>{''.join(figures)}</div>"
    )


def write_anomaly_report(evaluated: AnomalyEvaluation, out: str | Path) -> Path:
    """The page for ``evaluated`` (written atomically); histogram and grids of its first model."""
    first = evaluated.results[0]
    label = first.entry.label
    items = evaluated.items
    raw = evaluated.raw[label]
    defective = np.array([i.is_defective for i in items])
    cut = evaluated.cut[label]
    threshold = first.scores["threshold"]
    flagged = raw > cut
    order = np.argsort(-raw)
    hits = [items[i].path for i in order if defective[i] and flagged[i]][:GRID]
    escapes = [items[i].path for i in order[::-1] if defective[i] and not flagged[i]][:GRID]
    rejects = [items[i].path for i in order if not defective[i] and flagged[i]][:GRID]
    detector = AnomalyDetector(evaluated.bundle, entry=first.entry)
    models = _table(
        ["model", "size MB", *(name for name, _ in _FIGURES)],
        [
            [r.entry.label, f"{r.size_bytes / 1e6:.2f}", *(r.scores.get(k) for _, k in _FIGURES)]
            for r in evaluated.results
        ],
    )
    groups = "".join(
        f"<h2>{title} ({html.escape(label)})</h2>"
        + _table(
            ["group", "items", "defects", "image AUROC", "false-reject", "escape"],
            [
                [
                    name,
                    g["items"],
                    g["defects"],
                    g.get("image_auroc"),
                    g.get("false_reject"),
                    g.get("escape"),
                ]
                for name, g in first.scores[key].items()
            ],
        )
        for title, key in (("Per defect type", "per_defect"), ("Per slice", "slices"))
        if first.scores[key]
    )
    title = f"{evaluated.bundle.root.name}: anomaly detection on {evaluated.split}"
    page = (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}"
        f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p class=muted>{html.escape(str(evaluated.source))}: {len(items)} parts, "
        f"{int(defective.sum())} defective; threshold {threshold:.3f} on the 0..1 score.</p>"
        f"{models}{groups}<h2>Scores of good and defective parts ({html.escape(label)})</h2>"
        f"<figure>{_histogram(raw, defective, cut, threshold)}<figcaption>dashed line: the "
        f"threshold, {threshold:.2f} on the 0..1 score</figcaption></figure>"
        + _grid("Best hits", "defective parts with the highest scores", detector, hits)
        + _grid("Escapes", "defective parts below the threshold, lowest first", detector, escapes)
        + _grid("False rejects", "good parts above the threshold, highest first", detector, rejects)
        + "</body></html>"
    )
    out = Path(out)
    write_text_atomically(out, page)
    return out

"""The report's sections beyond the benchmark tables: given a split's evaluation, accuracy with its interval, per-class recall
(rarest class first) and confusion matrices, fp32 beside int8 for each engine."""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the build side's evaluation; the page only reads its fields
    from edgeft.evaluation.bundle_eval import ModelScores

CONFIDENCE = 0.95
CELL_INCHES = 0.6  # one confusion-matrix cell
MATRIX_MARGIN_INCHES = 1.2  # room for the class names and the axis labels


@dataclass(frozen=True)
class Accuracy:
    """An accuracy and its Wilson interval, in percent, over ``items`` predictions (0 where
    only the accuracy is known: then the interval is the accuracy itself)."""

    percent: float
    low: float
    high: float
    items: int

    def __str__(self) -> str:
        return f"{self.percent:.2f}% [{self.low:.1f}, {self.high:.1f}]"


def svg_of(figure: Any) -> str:
    """A matplotlib figure as inline SVG (no date, so the same data gives the same page)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def model_key(model: ModelScores) -> tuple[str, str, str]:
    """The (engine, precision, variant) a benchmark row names the same model by."""
    scheme = model.entry.int8_scheme
    return model.entry.engine, model.entry.precision, scheme.key if scheme else ""


def accuracy_of(scores: dict[str, Any]) -> Accuracy:
    """Accuracy from the confusion matrix's counts, with its Wilson interval: honest at a few
    hundred items, where a 0.5-point gap is one or two of them."""
    from scipy.stats import binomtest

    matrix = scores["confusion_matrix"]
    hits = sum(matrix[i][i] for i in range(len(matrix)))
    items = sum(map(sum, matrix))
    interval = binomtest(hits, items).proportion_ci(CONFIDENCE, method="wilson")
    return Accuracy(100 * hits / items, 100 * interval.low, 100 * interval.high, items)


def _by_engine(evaluation: Sequence[ModelScores]) -> list[list[ModelScores]]:
    """The models grouped by engine (in the order engines first appear), fp32 first."""
    engines = list(dict.fromkeys(m.entry.engine for m in evaluation))
    return [
        sorted((m for m in evaluation if m.entry.engine == e), key=lambda m: m.entry.precision)
        for e in engines
    ]


def _classes_rarest_first(evaluation: Sequence[ModelScores]) -> list[tuple[str, int]]:
    per_class = evaluation[0].scores["per_class"]
    return sorted(((name, row["support"]) for name, row in per_class.items()), key=lambda c: c[1])


def _cells(values: Sequence[str], tag: str = "td") -> str:
    return "".join(f"<{tag}>{html.escape(v)}</{tag}>" for v in values)


def _accuracy_table(evaluation: Sequence[ModelScores], split: str) -> str:
    """Accuracy with its interval, the drop against fp32, macro-F1, agreement with fp32 and
    recall per class (rarest first: the class a defect detector exists for), grouped by engine."""
    classes = _classes_rarest_first(evaluation)
    rarest = len(classes) > 1 and classes[0][1] < classes[1][1]  # not where supports tie
    recall_heads = [
        f"recall {name} (n={support}{', rarest' if i == 0 and rarest else ''})"
        for i, (name, support) in enumerate(classes)
    ]
    heads = ["model", f"{split} accuracy ({CONFIDENCE:.0%} interval)", "Δ vs fp32 (points)",
             "macro-F1", *recall_heads, "agrees with fp32", "size MB"]  # fmt: skip
    body = []
    for group in _by_engine(evaluation):
        for i, model in enumerate(group):
            scores = model.scores
            delta, agreement = scores.get("accuracy_delta_points"), scores.get("agreement")
            cells = [
                model.entry.label,
                str(accuracy_of(scores)),
                "-" if delta is None else f"{delta:+.2f}",
                f"{scores['macro_f1']:.3f}",
                *(f"{scores['per_class'][name]['recall']:.1%}" for name, _ in classes),
                "-" if agreement is None else f"{agreement:.1%}",
                f"{model.size_bytes / 1e6:.2f}",
            ]
            body.append(f"<tr{' class=engine' if i == 0 else ''}>{_cells(cells)}</tr>")
    return f"<table class=accuracy><tr>{_cells(heads, 'th')}</tr>{''.join(body)}</table>"


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display on a build server or a box)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _confusion_svg(scores: dict[str, Any]) -> str:
    plt = pyplot()
    matrix, classes = scores["confusion_matrix"], scores["classes"]
    side = CELL_INCHES * len(classes) + MATRIX_MARGIN_INCHES
    figure, axis = plt.subplots(figsize=(side, side))
    axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    axis.set_yticks(range(len(classes)), classes)
    axis.set(xlabel="predicted", ylabel="true")
    peak = max(map(max, matrix)) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            colour = "white" if count > peak / 2 else "black"
            axis.text(j, i, str(count), ha="center", va="center", color=colour)
    svg = svg_of(figure)
    plt.close(figure)
    return svg


def _confusion_matrices(evaluation: Sequence[ModelScores], split: str) -> str:
    """One small heatmap per model, counts in the cells; each engine's models on one row."""
    rows = []
    for group in _by_engine(evaluation):
        figures = "".join(
            f"<figure class=confusion>{_confusion_svg(m.scores)}<figcaption>"
            f"{html.escape(m.entry.label)}: {accuracy_of(m.scores).items} {html.escape(split)} "
            "items</figcaption></figure>"
            for m in group
        )
        rows.append(f"<div class=plots>{figures}</div>")
    return "".join(rows)


def evaluation_sections(evaluation: Sequence[ModelScores], split: str) -> str:
    """The accuracy table and the confusion matrices, with a line on what the interval means."""
    items = accuracy_of(evaluation[0].scores).items
    return (
        f"<h2>Accuracy on the {html.escape(split)} split</h2><p class=muted>{items} items: one "
        f"item is {100 / items:.2f} points. Intervals are {CONFIDENCE:.0%} Wilson intervals of "
        "each accuracy; Δ compares each int8 model with its fp32 model on the same items.</p>"
        f"{_accuracy_table(evaluation, split)}<h2>Confusion matrices</h2>"
        f"{_confusion_matrices(evaluation, split)}"
    )

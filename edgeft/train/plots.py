"""Training curves and the confusion matrix as PNGs (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    epochs = [h["epoch"] for h in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    left.plot(epochs, [h["val_loss"] for h in history], marker="o", label="val")
    left.set(title="loss", xlabel="epoch")
    left.legend()
    right.plot(epochs, [h["val_accuracy"] for h in history], marker="o", label="val accuracy")
    right.plot(epochs, [h["val_macro_f1"] for h in history], marker="o", label="val macro-F1")
    right.set(title="validation", xlabel="epoch", ylim=(0, 1))
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_confusion(metrics: dict[str, Any], path: Path) -> None:
    matrix, classes = metrics["confusion_matrix"], metrics["classes"]
    figure, axis = plt.subplots(figsize=(1.2 * len(classes) + 3, 1.2 * len(classes) + 2))
    axis.imshow(matrix, cmap="Blues")
    axis.set(
        xticks=range(len(classes)),
        yticks=range(len(classes)),
        xlabel="predicted",
        ylabel="true",
        title=f"test: accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}",
    )
    axis.set_xticklabels(classes, rotation=45, ha="right")
    axis.set_yticklabels(classes)
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            axis.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                color="white" if count > peak / 2 else "black",
            )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)

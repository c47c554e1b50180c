"""``edgeft monitor --export-uncertain N``: the kept inputs worth an operator's time.

Labels are the expensive part of retraining; the inputs the model is least sure of teach it the
most (uncertainty sampling). The export is in the layout ``finetune`` reads: inputs that have
feedback go to ``DIR/<label>/``; the N most informative unlabelled ones lie loose in ``DIR``
(``finetune`` reads class folders only), listed in ``DIR/to-label.csv`` with the model's guess,
for the operator to move into their class folder. Text inputs go to ``labelled.csv`` and
``to-label.csv`` instead.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeft.errors import EdgeftError
from edgeft.monitor.prediction_log import read_log

STRATEGIES = ("least-confidence", "margin", "entropy")
TO_LABEL = "to-label.csv"


def informativeness(probabilities: np.ndarray, strategy: str) -> np.ndarray:
    """Higher is more informative: 1 - top probability, minus the top-two margin, or entropy."""
    if strategy == "least-confidence":
        return 1.0 - probabilities.max(axis=1)
    if strategy == "margin":
        top_two = np.sort(probabilities, axis=1)[:, -2:]
        return -(top_two[:, 1] - top_two[:, 0])
    if strategy == "entropy":
        return -(probabilities * np.log(np.clip(probabilities, 1e-12, None))).sum(axis=1)
    raise EdgeftError(f"unknown strategy {strategy!r}; choose {', '.join(STRATEGIES)}")


@dataclass(frozen=True)
class LabellingExport:
    out: Path
    to_label: int
    labelled: int
    missing_files: int  # kept inputs rotated out or removed since they were logged

    def to_dict(self) -> dict[str, object]:
        return {
            "out": str(self.out),
            "to_label": self.to_label,
            "labelled": self.labelled,
            "missing_files": self.missing_files,
        }


def export_for_labelling(
    log: str | Path,
    out: str | Path,
    count: int,
    strategy: str = "least-confidence",
    model: str | None = None,
) -> LabellingExport:
    """Write the ``count`` most informative unlabelled kept inputs and every labelled one of
    ``model`` (every model when None) into ``out``."""
    if count < 0:
        raise EdgeftError("--export-uncertain takes a count of 0 or more")
    informativeness(np.ones((1, 2)) / 2, strategy)  # an unknown strategy fails before writing
    versions = [v for v in read_log(log) if model in (None, v.model)]
    if not versions:
        raise EdgeftError(f"{log}: no logged predictions{f' of {model!r}' if model else ''}")
    inputs_dir = Path(log).with_name(Path(log).name + ".inputs")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    candidates: list[tuple[float, str, str, str, float]] = []
    labelled, missing = [], 0
    for version in versions:
        scores = informativeness(version.probabilities, strategy)
        for i, (row_id, name) in enumerate(zip(version.ids, version.inputs, strict=True)):
            if name is None:
                continue
            if not (inputs_dir / name).is_file():
                missing += 1
                continue
            if row_id in version.feedback:
                labelled.append((name, version.feedback[row_id]))
            else:
                guess = version.labels[int(version.probabilities[i].argmax())]
                confidence = float(version.probabilities[i].max())
                candidates.append((float(scores[i]), row_id, name, guess, confidence))
    chosen = sorted(candidates, key=lambda c: (-c[0], c[1]))[:count]
    if any(name.endswith(".txt") for name, _ in labelled) or any(
        c[2].endswith(".txt") for c in chosen
    ):
        _write_texts(inputs_dir, out, chosen, labelled, strategy)
    else:
        for name, label in labelled:
            (out / label).mkdir(exist_ok=True)
            shutil.copyfile(inputs_dir / name, out / label / name)
        for _, _, name, _, _ in chosen:
            shutil.copyfile(inputs_dir / name, out / name)
        listing = [(name, guess, conf, score) for score, _, name, guess, conf in chosen]
        _write_listing(out / TO_LABEL, listing, strategy)
    return LabellingExport(out, len(chosen), len(labelled), missing)


def _write_listing(path: Path, rows: list[tuple], strategy: str) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["input", "model_guess", "confidence", f"ranked_by_{strategy}"])
        writer.writerows(rows)


def _write_texts(
    inputs_dir: Path,
    out: Path,
    chosen: list[tuple[float, str, str, str, float]],
    labelled: list[tuple[str, str]],
    strategy: str,
) -> None:
    def text(name: str) -> str:
        return (inputs_dir / name).read_text(encoding="utf-8")

    with (out / "labelled.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows((text(name), label) for name, label in labelled)
    listing = [(text(name), guess, conf, score) for score, _, name, guess, conf in chosen]
    _write_listing(out / TO_LABEL, listing, strategy)

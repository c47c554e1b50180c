"""``edgeft monitor --export-uncertain N``: the kept inputs worth an operator's time.

Labels are the expensive part of retraining; the inputs the model is least sure of teach it the
most (uncertainty sampling). The export is in the layout ``finetune`` reads: inputs that have
feedback go to ``DIR/<label>/``; the N most informative unlabelled ones lie loose in ``DIR``
(``finetune`` reads class folders only), listed in ``DIR/to-label.csv`` with the model's guess,
for the operator to move into their class folder. Text inputs go to ``labelled.csv`` and
``to-label.csv`` instead.

Everything in the log is data, not a path: a label becomes its folder through
``safe_folder_name`` (a bundle whose label is ``../x`` writes ``DIR/_x-<hash>/``), kept-input
names are plain file names (``read_log`` skips rows with others), and every file written is
checked to land inside ``DIR`` (a symlink already there cannot lead it out).
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeft.bundle.labels import safe_folder_name
from edgeft.errors import EdgeftError, shown
from edgeft.monitor.prediction_log import read_log

STRATEGIES = ("least-confidence", "margin", "entropy", "diverse")
# Rank by the model's own doubt; "diverse" instead spreads the picks over the embedding sketch.
UNCERTAINTY = STRATEGIES[:3]
TO_LABEL = "to-label.csv"


def informativeness(probabilities: np.ndarray, strategy: str) -> np.ndarray:
    """Higher is more informative: 1 - top probability, minus the top-two margin, or entropy
    ("diverse" ranks by least confidence where it needs an order: its first pick)."""
    if strategy == "diverse":
        return informativeness(probabilities, "least-confidence")
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
    damaged: int = 0  # rows of the log skipped as unreadable, or whose input file leads out
    renamed: dict[str, str] = field(default_factory=dict)  # label -> its folder, where they differ

    def to_dict(self) -> dict[str, object]:
        return {
            "out": str(self.out),
            "to_label": self.to_label,
            "labelled": self.labelled,
            "missing_files": self.missing_files,
            "damaged_rows": self.damaged,
            "renamed_labels": self.renamed,
        }


def check_out_folder(out: str | Path) -> Path:
    """``--out`` as a folder to write into: refused up front when something else is there."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EdgeftError(f"--out {out}: exists and is not a folder; name a folder")
    return out


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
    out = check_out_folder(out)
    versions = [v for v in read_log(log) if model in (None, v.model)]
    if not versions:
        raise EdgeftError(f"{log}: no logged predictions{f' of {model!r}' if model else ''}")
    inputs_dir = Path(log).with_name(Path(log).name + ".inputs")
    out.mkdir(parents=True, exist_ok=True)
    candidates: list[tuple[float, str, str, str, float]] = []
    sketches: list[np.ndarray | None] = []  # per candidate, then per labelled input
    labelled, labelled_sketches, missing = [], [], 0
    damaged = sum(v.damaged for v in versions)
    if strategy == "diverse" and len({v.bundle for v in versions}) > 1:
        raise EdgeftError(
            "--strategy diverse compares embedding sketches, which differ between bundles: "
            "the log holds several; pass --model, or use an uncertainty strategy"
        )
    for version in versions:
        if not len(version):
            continue
        scores = informativeness(version.probabilities, strategy)
        for i, (row_id, name) in enumerate(zip(version.ids, version.inputs, strict=True)):
            if name is None:
                continue
            if not (inputs_dir / name).is_file():
                missing += 1
                continue
            if not (inputs_dir / name).resolve().is_relative_to(inputs_dir.resolve()):
                damaged += 1  # a link planted among the kept inputs: never copied out
                continue
            sketch = None if version.embedding is None else version.embedding[i, :-1]
            if row_id in version.feedback:
                labelled.append((name, version.feedback[row_id]))
                labelled_sketches.append(sketch)
            else:
                guess = version.labels[int(version.probabilities[i].argmax())]
                confidence = float(version.probabilities[i].max())
                candidates.append((float(scores[i]), row_id, name, guess, confidence))
                sketches.append(sketch)
    if strategy in UNCERTAINTY:
        chosen = sorted(candidates, key=lambda c: (-c[0], c[1]))[:count]
    else:
        if any(s is None for s in sketches):
            raise EdgeftError("--strategy diverse needs a bundle whose graph has an embedding")
        picks = k_center(np.array(sketches), np.array(labelled_sketches), count, candidates)
        chosen = [(distance, *candidates[i][1:]) for i, distance in picks]
    folders: dict[str, str] = {}
    if any(name.endswith(".txt") for name, _ in labelled) or any(
        c[2].endswith(".txt") for c in chosen
    ):
        _write_texts(inputs_dir, out, chosen, labelled, strategy)
    else:
        folders = _label_folders({label for _, label in labelled})
        for name, label in labelled:
            target = _inside(out, folders[label], name)
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(inputs_dir / name, target)
        for _, _, name, _, _ in chosen:
            shutil.copyfile(inputs_dir / name, _inside(out, name))
        listing = [(name, guess, conf, score) for score, _, name, guess, conf in chosen]
        _write_listing(_inside(out, TO_LABEL), listing, strategy)
    renamed = {label: folder for label, folder in folders.items() if label != folder}
    return LabellingExport(out, len(chosen), len(labelled), missing, damaged, renamed)


def _label_folders(labels: set[str]) -> dict[str, str]:
    """Each label's class folder (``safe_folder_name``); two labels never share one, and none
    takes the listing's name."""
    folders = {label: safe_folder_name(label) for label in sorted(labels)}
    taken: dict[str, str] = {TO_LABEL: "the listing"}
    for label, folder in folders.items():
        if folder in taken:
            raise EdgeftError(
                f"labels {shown(label)} and {shown(taken[folder])} would share the folder "
                f"{shown(folder)}; rename one in the bundle"
            )
        taken[folder] = label
    return folders


def _inside(out: Path, *parts: str) -> Path:
    """``out/parts...``, refused when it resolves outside ``out`` whatever the log said."""
    target = out.joinpath(*parts)
    try:
        inside = target.resolve().is_relative_to(out.resolve())
    except (OSError, RuntimeError):  # a link loop (RuntimeError before Python 3.13)
        inside = False
    if not inside:
        raise EdgeftError(f"refusing to write {shown(str(target))}: it leads outside {out}")
    return target


def k_center(
    points: np.ndarray, centres: np.ndarray, count: int, candidates: list[tuple]
) -> list[tuple[int, float]]:
    """Greedy k-centre (the core-set selection of Sener and Savarese, 2018): each pick is the
    point farthest from everything labelled or picked so far, so the picks cover the new data
    instead of crowding one doubtful corner. Under a strong shift a model is confidently wrong
    on most new inputs, and ranking by its doubt never reaches them (benchmarks/results/
    monitor_elpv.md). Starts from the least confident candidate when nothing is labelled.
    Returns (candidate index, its distance when picked)."""
    if len(points) == 0 or count == 0:
        return []
    scale = points.std(axis=0) + 1e-9  # every sketch axis counts alike
    points = points / scale
    picks: list[tuple[int, float]] = []
    if len(centres):
        gaps = points[:, None, :] - (centres / scale)[None, :, :]
        nearest = np.linalg.norm(gaps, axis=2).min(axis=1)
    else:
        first = max(range(len(candidates)), key=lambda i: candidates[i][0])
        picks.append((first, float("inf")))
        nearest = np.linalg.norm(points - points[first], axis=1)
        nearest[first] = -1.0  # picked: never again (a distance is never negative)
    while len(picks) < min(count, len(points)):
        index = int(np.argmax(nearest))
        picks.append((index, float(nearest[index])))
        nearest = np.minimum(nearest, np.linalg.norm(points - points[index], axis=1))
        nearest[index] = -1.0
    return picks


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
        try:
            return (inputs_dir / name).read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise EdgeftError(f"{inputs_dir / name}: a kept text that is not UTF-8") from exc

    with _inside(out, "labelled.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows((text(name), label) for name, label in labelled)
    listing = [(text(name), guess, conf, score) for score, _, name, guess, conf in chosen]
    _write_listing(_inside(out, TO_LABEL), listing, strategy)

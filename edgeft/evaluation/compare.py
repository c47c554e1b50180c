"""``edgeft compare``: a retrained candidate against the production model, side by side, on the
old test split and on newly labelled data from each environment the boxes see.

Each bundle runs the model the box would run (``choose_model``, ``precision="auto"``): the
question is whether swapping the deployed model helps where it is deployed. Deltas are
candidate minus production, in points. Anomaly bundles (a refit with new good parts) are held
to image AUROC, false-reject and escape rates at their thresholds, on the recorded test split
and on each ``--data`` inspection folder's ``test/``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from rich.progress import Progress

from edgeft.bundle import Bundle
from edgeft.data import ClassificationDataset, labelled_examples
from edgeft.errors import EdgeftError
from edgeft.evaluation.bundle_eval import dataset_from_provenance
from edgeft.evaluation.encoded_splits import encode_split
from edgeft.repository import ModelRepository, ModelVersion
from edgeft.runtime.model_choice import ModelChoice, choose_model
from edgeft.runtime.scoring import (
    EncodedSplit,
    encode_items,
    entry_logits,
    score_logits,
)

CANDIDATE = "candidate"
TEST = "test"  # the environment of the candidate's recorded test split
ROLES = (CANDIDATE, "production")


LOWER_IS_BETTER = {"false_reject", "escape"}


@dataclass(frozen=True)
class EnvironmentScores:
    """Both models on one environment's labelled items: a classifier's accuracy, macro-F1 and
    the recall of each class present there; an anomaly model's detection figures."""

    name: str
    source: str
    items: int
    candidate: dict[str, Any]
    production: dict[str, Any]

    def delta_points(self) -> dict[str, Any]:
        """Candidate minus production, in points, shaped as the scores (a figure either model
        lacks here, such as AUROC without defects, has none)."""
        after, before = self.candidate, self.production
        delta: dict[str, Any] = {}
        for key, value in before.items():
            if isinstance(value, dict):
                delta[key] = {n: _points(after[key][n] - r) for n, r in value.items()}
            elif value is not None and after.get(key) is not None:
                delta[key] = _points(after[key] - value)
        return delta

    def rows(self) -> list[tuple[str, float, float, float]]:
        """(metric, production, candidate, delta in points) for a side-by-side table."""
        delta = self.delta_points()
        rows = []
        for key, value in self.production.items():
            if isinstance(value, dict):
                rows += [(f"{key} {n}", r, self.candidate[key][n], delta[key][n])
                         for n, r in value.items()]  # fmt: skip
            elif key in delta:
                rows.append((key, value, self.candidate[key], delta[key]))
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "items": self.items,
            "candidate": self.candidate,
            "production": self.production,
            "delta_points": self.delta_points(),
        }


@dataclass(frozen=True)
class Comparison:
    """The two bundles, the model each ran, their scores per environment, and the environments
    that could not be scored (with why)."""

    bundles: dict[str, Bundle]
    choices: dict[str, ModelChoice]
    environments: list[EnvironmentScores]
    skipped: list[dict[str, str]]

    def to_dict(self) -> dict[str, Any]:
        return {
            **{
                role: {
                    "bundle": str(self.bundles[role].root),
                    "model": self.choices[role].entry.label,
                }
                for role in ROLES
            },
            "environments": [e.to_dict() for e in self.environments],
            "skipped": self.skipped,
        }


def compare_bundles(
    candidate: str | Path | Bundle,
    production: str | Path | Bundle,
    data: Sequence[str | Path] = (),
    precision: str = "auto",
    progress: Progress | None = None,
) -> Comparison:
    """Score both bundles on the candidate's recorded test split (skipped, with the reason,
    where it cannot be reloaded) and on each labelled folder or text table of ``data``, an
    environment named by its file or folder name."""
    bundles = {
        role: b if isinstance(b, Bundle) else Bundle.load(b)
        for role, b in zip(ROLES, (candidate, production), strict=True)
    }
    tasks = {b.manifest.task for b in bundles.values()}
    if len(tasks) > 1:
        raise EdgeftError(f"the bundles' tasks differ: {', '.join(sorted(tasks))}")
    if bundles[CANDIDATE].manifest.anomaly is not None:
        return _compare_anomaly_bundles(bundles, data, precision, progress)
    labels = bundles[CANDIDATE].manifest.labels
    if bundles["production"].manifest.labels != labels:
        raise EdgeftError(
            f"the bundles' labels differ: candidate {', '.join(labels)}; production "
            f"{', '.join(bundles['production'].manifest.labels)}"
        )
    choices = {role: choose_model(b.manifest, precision=precision) for role, b in bundles.items()}
    environments, skipped = [], []
    test, why = _recorded_test(bundles[CANDIDATE])
    if test is None:
        skipped.append({"environment": TEST, "reason": why})
    else:
        encode = partial(encode_split, dataset=test, split=TEST, progress=progress)
        environments.append(_scored(TEST, test.source, bundles, choices, encode))
    for source in data:
        _, examples = labelled_examples(source, labels)
        name = Path(source).name
        encode = partial(
            encode_items,
            items=[e.item for e in examples],
            labels=[e.label for e in examples],
            progress=progress,
            description=f"encoding {name}",
        )
        environments.append(_scored(name, str(source), bundles, choices, encode))
    return Comparison(bundles, choices, environments, skipped)


def _compare_anomaly_bundles(
    bundles: dict[str, Bundle],
    data: Sequence[str | Path],
    precision: str,
    progress: Progress | None,
) -> Comparison:
    """Both anomaly bundles on the candidate's recorded test split and each folder's test/."""
    from edgeft.anomaly.folder import read_inspection_folder, recorded_folder
    from edgeft.evaluation.anomaly_eval import score_outputs
    from edgeft.runtime.anomaly.detector import AnomalyDetector

    choices = {role: choose_model(b.manifest, precision=precision) for role, b in bundles.items()}
    detectors = {role: AnomalyDetector(b, entry=choices[role].entry) for role, b in bundles.items()}
    folders, skipped = [], []
    try:
        folders.append((TEST, recorded_folder(bundles[CANDIDATE].manifest.provenance)))
    except EdgeftError as exc:
        skipped.append({"environment": TEST, "reason": f"the candidate's folder: {exc}"})
    folders += [(Path(source).name, read_inspection_folder(source)) for source in data]
    environments = []
    for name, folder in folders:
        if not folder.test:
            skipped.append({"environment": name, "reason": f"{folder.root} has no test/ items"})
            continue
        paths = [i.path for i in folder.test]
        scores = {}
        for role, detector in detectors.items():
            task = progress.add_task(f"{name}: {role}", total=len(paths)) if progress else None
            advance = partial(progress.advance, task) if progress and task is not None else None
            outputs = detector.outputs_of(paths, advance=advance)
            found = score_outputs(outputs, folder.test, detector.threshold, folder.root)
            scores[role] = {k: found.get(k) for k in ("image_auroc", "false_reject", "escape")}
        environments.append(EnvironmentScores(name, str(folder.root), len(paths),
                                              scores[CANDIDATE], scores["production"]))  # fmt: skip
    return Comparison(bundles, choices, environments, skipped)


def push_candidate(
    bundle: str | Path, repository: str | Path, name: str | None = None
) -> ModelVersion:
    """Push ``bundle`` as the model's next version (validated on this host) and point the
    ``candidate`` alias at it; production stays where it is until promoted."""
    repo = ModelRepository(repository, create=True)
    version = repo.push(bundle, name)
    repo.promote(version.model, version.version, CANDIDATE)
    return version


def _recorded_test(bundle: Bundle) -> tuple[ClassificationDataset | None, str]:
    try:
        dataset = dataset_from_provenance(bundle.manifest.provenance)
    except EdgeftError as exc:
        return None, f"the candidate's recorded dataset cannot be reloaded: {exc}"
    return dataset, "" if dataset else "the candidate records no dataset"


def _scored(
    name: str,
    source: str,
    bundles: dict[str, Bundle],
    choices: dict[str, ModelChoice],
    encode: Callable[[Bundle], EncodedSplit],
) -> EnvironmentScores:
    """Each bundle's items encoded by its own preprocessing, then scored."""
    scores = {}
    for role, bundle in bundles.items():
        data = encode(bundle)
        scores[role] = _headline(
            score_logits(entry_logits(bundle, choices[role].entry, data), data)
        )
    return EnvironmentScores(name, source, len(data), scores[CANDIDATE], scores["production"])


def _headline(scores: dict[str, Any]) -> dict[str, Any]:
    return {
        "accuracy": scores["accuracy"],
        "macro_f1": scores["macro_f1"],
        "recall": {n: c["recall"] for n, c in scores["per_class"].items() if c["support"]},
    }


def _points(difference: float) -> float:
    return round(100.0 * difference, 2)


@dataclass(frozen=True)
class CandidateReview:
    """``edgeft compare``'s result: the comparison, and the version pushed (when asked)."""

    comparison: Comparison
    pushed: ModelVersion | None = None
    repository: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        summary = self.comparison.to_dict()
        if self.pushed is not None:
            summary["pushed"] = {"model": self.pushed.model, "version": self.pushed.version}
        return summary


def review_candidate(
    candidate: str | Path,
    production: str | Path,
    data: Sequence[str | Path] = (),
    precision: str = "auto",
    progress: Progress | None = None,
    push: Path | None = None,
    name: str | None = None,
) -> CandidateReview:
    """Compare the candidate with production, then (with ``push``) put it into that repository
    as the model ``name``'s next version under the ``candidate`` alias."""
    if name is not None and push is None:
        raise EdgeftError("--name names the model in --push's repository; pass --push too")
    comparison = compare_bundles(candidate, production, data, precision, progress)
    pushed = push_candidate(candidate, push, name) if push is not None else None
    return CandidateReview(comparison, pushed, push)

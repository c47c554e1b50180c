"""``edgeft monitor`` as a call: analyse a prediction log against its bundles' references,
optionally write the HTML report and export the inputs most worth labelling."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgeft.atomic import write_text_atomically
from edgeft.errors import EdgeftError
from edgeft.monitor.active_learning import (
    LabellingExport,
    check_out_folder,
    export_for_labelling,
)
from edgeft.monitor.analysis import MonitorReport, monitor_log
from edgeft.monitor.html_report import render_report
from edgeft.repository import ModelRepository


@dataclass(frozen=True)
class LabellingRequest:
    """Export the ``count`` most informative kept inputs, by ``strategy``, to folder ``out``."""

    count: int
    out: Path
    strategy: str = "least-confidence"


@dataclass(frozen=True)
class LogReview:
    """The analysis, and what was written beside it."""

    report: MonitorReport
    exported: LabellingExport | None = None
    html: Path | None = None


def repository_bundles(repo: Path) -> list[Path]:
    """Every version's bundle of every model in the repository."""
    repository = ModelRepository(repo)
    return [v.path for m in repository.models() for v in repository.versions(m)]


def review_log(
    log: Path,
    bundles: Sequence[Path] = (),
    repo: Path | None = None,
    window: str = "500",
    html: Path | None = None,
    labelling: LabellingRequest | None = None,
) -> LogReview:
    """Drift and estimated accuracy per window of each logged version whose bundle is among
    ``bundles`` or ``repo``'s versions; ``--out`` is checked before the analysis, which can
    take a while."""
    if labelling is not None:
        check_out_folder(labelling.out)
    references = [*bundles, *(repository_bundles(repo) if repo is not None else [])]
    if not references:
        raise EdgeftError(
            "pass --bundle B (repeatable) or --repo REPO: the reference to compare with"
        )
    report = monitor_log(log, references, window)
    exported = None
    if labelling is not None:
        exported = export_for_labelling(log, labelling.out, labelling.count, labelling.strategy)
    if html is not None:
        write_text_atomically(html, render_report(report))
    return LogReview(report, exported, html)

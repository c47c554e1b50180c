"""What ``edgeft validate`` reports, whatever the bundle's task: each model's result on this
host, the models it could not run here and why, and the report's record of host and bundle."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from edgeft.bundle import MANIFEST_NAME, Bundle, Manifest, ModelEntry
from edgeft.runtime.model_choice import engine_installed, int8_mismatch
from edgeft.targets import Host, host_fingerprint


@dataclass
class ModelValidation:
    """One model on this box: its scores, and (int8) its drop against fp32 and the verdict."""

    model: str
    engine: str
    precision: str
    scheme: str | None
    scores: dict[str, Any]
    agreement_with_fp32: float | None = None
    drop: dict[str, float] | None = None  # paired drop against fp32 here, with its interval
    recorded: dict[str, Any] | None = None  # build time on the same items
    budget_points: float | None = None
    budget_metric: str | None = None
    passed: bool = True
    reason: str | None = None


@dataclass
class ValidationReport:
    bundle: str
    manifest_sha256: str
    data: str
    items: int
    host: dict[str, Any]
    created: str
    models: list[ModelValidation] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every scored model passed, and at least one was scored."""
        return bool(self.models) and all(m.passed for m in self.models)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}

    def failures(self) -> list[str]:
        if not self.models:
            return ["no model of this bundle could be scored on this host"]
        return [f"{m.model}: {m.reason}" for m in self.models if not m.passed]


@dataclass(frozen=True)
class LabelledItems:
    """Items to validate on instead of the acceptance set (image paths or texts), each with its
    label's name, and where they came from (``edgeft.data.labelled_items`` lists a folder)."""

    items: list[Any]
    labels: list[str]
    source: str


def runnable_models(
    manifest: Manifest, host: Host, models: Sequence[ModelEntry] | None
) -> tuple[list[ModelEntry], list[dict[str, str]]]:
    """The models to score here (``models``, else all) and those skipped, with why; a model
    named in ``models`` is scored even when its int8 scheme does not fit this host."""
    runnable, skipped = [], []
    for entry in models if models is not None else manifest.models:
        why = _why_not_here(entry, host, forced=models is not None)
        if why:
            skipped.append({"model": entry.label, "reason": why})
        else:
            runnable.append(entry)
    return runnable, skipped


def new_report(
    bundle: Bundle,
    host: Host,
    source: str,
    items: int,
    skipped: list[dict[str, str]],
    models: list[ModelValidation] | None = None,
) -> ValidationReport:
    return ValidationReport(
        bundle=str(bundle.root),
        manifest_sha256=hashlib.sha256((bundle.root / MANIFEST_NAME).read_bytes()).hexdigest(),
        data=source,
        items=items,
        host=host_fingerprint(host),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        models=models or [],
        skipped=skipped,
    )


def _why_not_here(entry: ModelEntry, host: Host, forced: bool) -> str | None:
    if not engine_installed(entry.engine):
        return f"{entry.engine} is not installed here"
    if entry.precision == "int8" and not forced:
        return int8_mismatch(entry, host)
    return None

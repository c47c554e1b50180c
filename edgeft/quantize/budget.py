"""The accuracy budget: an int8 model ships only if it stays within ``max_drop`` points of fp32.

Every candidate is scored through ``edgeft.runtime`` (as the edge box will run it) by a validator
from ``edgeft.quantize.budget_data``. The loop tries the backend's settings in order; if none
fits, the backend keeps its most sensitive layers in floating point (NNCF's accuracy control for
OpenVINO, the leave-one-out search of ``edgeft.quantize.float_fallback`` otherwise); if that fails
too, nothing is written and the error lists every attempt.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from edgeft.errors import EdgeftError
from edgeft.quantize.backends.base import Int8Quantizer, Ranker, Validator
from edgeft.runtime.scoring import headline

MAX_FLOAT_SHARE = 0.5  # by default, keeping more than half the layers in float defeats int8


@dataclass
class Attempt:
    setting: str
    keep_float: list[str]
    drop: float  # inf when the engine could not quantize with this setting (``error`` says why)
    scores: dict[str, Any] = field(repr=False)
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        summary = asdict(self) | {"scores": headline(self.scores)}
        return summary | ({"drop": None} if self.error else {"drop": round(self.drop, 3)})


@dataclass
class BudgetResult:
    """The accepted candidate (written to the requested path) and everything tried on the way."""

    setting: str
    keep_float: list[str]
    drop: float
    scores: dict[str, Any]
    attempts: list[Attempt]


class BudgetExceeded(EdgeftError):
    def __init__(self, engine: str, max_drop: float, attempts: list[Attempt]) -> None:
        tried = "; ".join(
            f"{a.setting}{f' +{len(a.keep_float)} float layers' if a.keep_float else ''}: "
            + (f"failed ({a.error})" if a.error else f"-{a.drop:.2f} pt")
            for a in attempts
        )
        super().__init__(
            f"{engine}: no int8 model within the {max_drop:.2f}-point budget (tried {tried}). "
            "Raise --max-accuracy-drop or --max-float-layers, add calibration data, or fine-tune "
            "with --qat"
        )
        self.attempts = attempts
        measured = [a for a in attempts if a.error is None]
        self.best = min(measured, key=lambda a: a.drop) if measured else None


def quantize_within_budget(
    quantizer: Int8Quantizer,
    method: str,
    out: Path,
    validate: Validator,
    max_drop: float,
    console: Console,
    max_float_layers: int | None = None,
    ready: dict[str, Path] | None = None,
    rank: Ranker | None = None,
) -> BudgetResult:
    """Try ``ready`` int8 models (a QAT export), then the settings, then the float fallback; on
    success the chosen model's files sit at ``out``."""
    attempts: list[Attempt] = []
    engine = quantizer.engine
    candidates = [(name, path) for name, path in (ready or {}).items()] + [
        (v, quantizer.workdir / f"{engine}-{v}" / Path(quantizer.int8_file).name)
        for v in quantizer.settings(method)
    ]
    for setting, candidate in candidates:
        with console.status(f"{engine}: quantizing ({setting})"):
            try:
                if setting not in (ready or {}):
                    quantizer.quantize(setting, candidate)
            except EdgeftError as exc:  # one calibration method failing leaves the others
                attempts.append(Attempt(setting, [], float("inf"), {}, error=str(exc)))
                console.print(f"{engine} int8 ({setting}): [yellow]failed[/]: {exc}")
                continue
            drop, scores = validate(candidate)
        attempts.append(Attempt(setting, [], drop, scores))
        console.print(f"{engine} int8 ({setting}): {_describe(drop, scores)}")
        if drop <= max_drop:
            _move(quantizer, candidate, out)
            return BudgetResult(setting, [], drop, scores, attempts)
    tried = [a for a in attempts if a.setting not in (ready or {}) and a.error is None]
    if not tried:
        raise BudgetExceeded(engine, max_drop, attempts)
    best = min(tried, key=lambda a: a.drop)
    console.print(
        f"{engine}: over the {max_drop:.2f}-point budget; keeping sensitive layers in float "
        f"(starting from {best.setting})"
    )
    candidate = quantizer.workdir / f"{engine}-restored" / Path(quantizer.int8_file).name
    limit = (
        int(len(quantizer.layers()) * MAX_FLOAT_SHARE)
        if max_float_layers is None
        else max_float_layers
    )
    kept = (
        quantizer.restore_accuracy(best.setting, candidate, validate, max_drop, limit, rank)
        if limit > 0
        else None
    )
    if kept is None:
        failure = f"keeping up to {limit} of the most sensitive layers in float did not fit"
        attempts.append(Attempt(best.setting, [], float("inf"), {}, error=failure))
        raise BudgetExceeded(engine, max_drop, attempts)
    drop, scores = validate(candidate)
    attempts.append(Attempt(best.setting, kept, drop, scores))
    if drop > max_drop:
        raise BudgetExceeded(engine, max_drop, attempts)
    console.print(
        f"{engine} int8 ({best.setting} + {len(kept)} float layers): {_describe(drop, scores)}"
    )
    _move(quantizer, candidate, out)
    return BudgetResult(best.setting, kept, drop, scores, attempts)


def _describe(drop: float, scores: dict[str, Any]) -> str:
    parts = [f"{k} {v:.4f}" for k, v in headline(scores).items()]
    return f"{', '.join(parts)}; drop {drop:.2f} pt" if parts else f"drop {drop:.2f} pt"


def _move(quantizer: Int8Quantizer, candidate: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    for source in quantizer.files_of(candidate):
        shutil.move(source, out.parent / (out.stem + source.suffix))

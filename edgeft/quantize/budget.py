"""The accuracy budget: an int8 model ships only if it stays within ``max_drop`` points of fp32
(and, where this host runs its kernels, only if it is faster than fp32 here).

Every candidate is scored through ``edgeft.runtime`` (as the edge box will run it) by a validator
from ``edgeft.quantize.budget_data``. The loop tries the backend's settings in order; if none
fits, the backend keeps its most sensitive layers in floating point (NNCF's accuracy control for
OpenVINO, the leave-one-out search of ``edgeft.quantize.float_fallback`` otherwise); if that fails
too, nothing is written and the error lists every attempt.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from edgeft.bundle.manifest import Int8Speed
from edgeft.errors import EdgeftError
from edgeft.quantize.backends.base import Int8Quantizer
from edgeft.quantize.float_fallback import FloatFallback
from edgeft.quantize.judging import CandidateScores, Judges

MAX_FLOAT_SHARE = 0.5  # by default, keeping more than half the layers in float defeats int8


@dataclass(frozen=True)
class BudgetOptions:
    """What the budget loop tries and what it accepts: the settings of ``method`` (a calibration
    method, or ``auto`` for the engine's own list), within ``max_drop`` points, keeping at most
    ``max_float_layers`` layers in float (None: up to ``MAX_FLOAT_SHARE`` of them), and whether
    an int8 model slower than fp32 on this host may ship (``allow_slower``)."""

    method: str
    max_drop: float
    max_float_layers: int | None = None
    allow_slower: bool = False


@dataclass
class Attempt:
    setting: str
    keep_float: list[str]
    drop: float  # inf when the engine could not quantize with this setting (``error`` says why)
    scores: CandidateScores = field(repr=False)
    error: str | None = None
    speed: Int8Speed | None = None  # timed only where within budget and this host runs it

    @property
    def speedup(self) -> float | None:
        """fp32's p50 over this candidate's on this host, where timed."""
        return None if self.speed is None else self.speed.speedup

    @property
    def slower_than_fp32(self) -> bool:
        return self.speedup is not None and self.speedup < 1.0

    def summary(self) -> dict[str, Any]:
        """The attempt as the manifest lists it (``attempts``): headline scores only."""
        return {
            "setting": self.setting,
            "keep_float": list(self.keep_float),
            "drop": None if self.error else round(self.drop, 3),
            "scores": self.scores.headline(),
            "error": self.error,
            "speed": None if self.speed is None else self.speed.to_dict(),
        }


@dataclass
class BudgetResult:
    """The accepted candidate (written to the requested path) and everything tried on the way."""

    accepted: Attempt
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


class SlowerThanFp32(BudgetExceeded):
    """Every candidate within budget ran slower than fp32 on this host: int8 would cost the box
    speed, the one thing it is for besides size, so fp32 serves unless the user says otherwise."""

    def __init__(self, engine: str, fastest: Attempt, attempts: list[Attempt]) -> None:
        assert fastest.speed is not None
        EdgeftError.__init__(
            self,
            f"{engine}: every int8 candidate within the budget runs slower than fp32 on this host "
            f"(the fastest, {fastest.setting}: {fastest.speed.int8_p50_ms:.3f} ms against "
            f"{fastest.speed.fp32_p50_ms:.3f} ms at batch 1, {fastest.speedup:.2f}x); fp32 "
            "serves instead. --allow-slower-int8 ships it anyway (for its size)",
        )
        self.attempts = attempts
        self.best = fastest


def quantize_within_budget(
    quantizer: Int8Quantizer,
    out: Path,
    options: BudgetOptions,
    judges: Judges,
    console: Console,
    ready: dict[str, Path] | None = None,
) -> BudgetResult:
    """Try ``ready`` int8 models (a QAT export), then the settings, then the float fallback; on
    success the chosen model's files sit at ``out``.

    With ``judges.time`` (this host runs the scheme's kernels), a candidate within budget is
    timed against fp32: the first that is also faster is taken; one that is slower does not end
    the search. If none is faster, ``SlowerThanFp32`` is raised, or with ``options.allow_slower``
    the fastest within budget is taken (still marked slower, so the caller says so)."""
    validate, time, max_drop = judges.validate, judges.time, options.max_drop
    attempts: list[Attempt] = []
    within: list[tuple[Attempt, Path]] = []
    engine = quantizer.engine
    candidates = [(name, path) for name, path in (ready or {}).items()] + [
        (v, quantizer.workdir / f"{engine}-{v}" / Path(quantizer.int8_file).name)
        for v in quantizer.settings(options.method)
    ]
    for setting, candidate in candidates:
        with console.status(f"{engine}: quantizing ({setting})"):
            try:
                if setting not in (ready or {}):
                    quantizer.quantize(setting, candidate)
            except EdgeftError as exc:  # one calibration method failing leaves the others
                attempts.append(
                    Attempt(setting, [], float("inf"), CandidateScores(), error=str(exc))
                )
                console.print(f"{engine} int8 ({setting}): [yellow]failed[/]: {exc}")
                continue
            drop, scores = validate(candidate)
            attempt = Attempt(setting, [], drop, scores)
            if drop <= max_drop and time is not None:
                attempt.speed = time(candidate)
        attempts.append(attempt)
        console.print(f"{engine} int8 ({setting}): {_describe(attempt)}")
        if drop <= max_drop:
            if not attempt.slower_than_fp32:
                return _accept(quantizer, attempt, candidate, out, attempts)
            within.append((attempt, candidate))
    if within:
        fastest, candidate = max(within, key=lambda pair: pair[0].speedup or 0.0)
        if not options.allow_slower:
            raise SlowerThanFp32(engine, fastest, attempts)
        return _accept(quantizer, fastest, candidate, out, attempts)
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
        if options.max_float_layers is None
        else options.max_float_layers
    )
    kept = (
        quantizer.restore_accuracy(
            FloatFallback(best.setting, candidate, validate, max_drop, limit, judges.rank)
        )
        if limit > 0
        else None
    )
    if kept is None:
        failure = f"keeping up to {limit} of the most sensitive layers in float did not fit"
        attempts.append(Attempt(best.setting, [], float("inf"), CandidateScores(), error=failure))
        raise BudgetExceeded(engine, max_drop, attempts)
    drop, scores = validate(candidate)
    restored = Attempt(best.setting, kept, drop, scores)
    attempts.append(restored)
    if drop > max_drop:
        raise BudgetExceeded(engine, max_drop, attempts)
    if time is not None:
        restored.speed = time(candidate)
    console.print(
        f"{engine} int8 ({best.setting} + {len(kept)} float layers): {_describe(restored)}"
    )
    if restored.slower_than_fp32 and not options.allow_slower:
        raise SlowerThanFp32(engine, restored, attempts)
    return _accept(quantizer, restored, candidate, out, attempts)


def _accept(
    quantizer: Int8Quantizer, attempt: Attempt, candidate: Path, out: Path, attempts: list[Attempt]
) -> BudgetResult:
    """Move the chosen candidate's files to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for source in quantizer.files_of(candidate):
        shutil.move(source, out.parent / (out.stem + source.suffix))
    return BudgetResult(attempt, attempts)


def _describe(attempt: Attempt) -> str:
    parts = [f"{k} {v:.4f}" for k, v in attempt.scores.headline().items()]
    text = (
        f"{', '.join(parts)}; drop {attempt.drop:.2f} pt"
        if parts
        else f"drop {attempt.drop:.2f} pt"
    )
    if attempt.speedup is not None:
        text += f"; {attempt.speedup:.2f}x fp32's speed"
    return text

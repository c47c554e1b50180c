"""The accuracy budget: an int8 model ships only if it stays within ``max_drop`` points of fp32.

Every candidate is scored on the validation split through ``edgeft.runtime`` (as the edge box
will run it). The loop tries the backend's variants in order; if none fits, the backend keeps
its most sensitive layers in floating point (NNCF's accuracy control for OpenVINO, a
leave-one-out ranking here for ONNX Runtime); if that fails too, nothing is written and the
error lists every attempt.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from edgeft.errors import EdgeftError
from edgeft.quantize.backends.base import Int8Quantizer, Ranker, Validator
from edgeft.runtime.budget_metrics import metric_value
from edgeft.runtime.predictor import softmax
from edgeft.runtime.scoring import EncodedSplit, headline, model_logits, score_logits

MAX_FLOAT_SHARE = 0.5  # by default, keeping more than half the layers in float defeats int8


@dataclass
class Attempt:
    variant: str
    keep_float: list[str]
    drop: float  # inf when the engine could not quantize with this variant (``error`` says why)
    scores: dict[str, Any] = field(repr=False)
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        summary = asdict(self) | {"scores": headline(self.scores)}
        return summary | ({"drop": None} if self.error else {"drop": round(self.drop, 3)})


@dataclass
class BudgetResult:
    """The accepted candidate (written to the requested path) and everything tried on the way."""

    variant: str
    keep_float: list[str]
    drop: float
    scores: dict[str, Any]
    attempts: list[Attempt]


class BudgetExceeded(EdgeftError):
    def __init__(self, engine: str, max_drop: float, attempts: list[Attempt]) -> None:
        tried = "; ".join(
            f"{a.variant}{f' +{len(a.keep_float)} float layers' if a.keep_float else ''}: "
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


def make_validator(
    engine: str,
    data: EncodedSplit,
    fp32_logits: np.ndarray,
    metric: str = "accuracy",
    exact: bool = False,
) -> Validator:
    """Drop in points of ``metric`` against fp32 on ``data``; without labels, top-1
    disagreement with fp32 in points. Scores carry ``deviation`` (mean L1 distance of the
    probabilities) and ``predicted`` (for the paired interval). ``exact`` runs int8 in exact
    arithmetic, for a scheme whose kernels would saturate on this host."""
    reference = score_logits(fp32_logits, data)

    def validate(path: Path) -> tuple[float, dict[str, Any]]:
        logits = model_logits(engine, path, "int8", data, exact=exact)
        scores = score_logits(logits, data, reference=fp32_logits)
        scores["deviation"] = deviation(logits, fp32_logits)
        scores["predicted"] = logits.argmax(axis=1)
        if data.labels is not None:
            drop = 100.0 * (metric_value(reference, metric) - metric_value(scores, metric))
        else:
            drop = 100.0 * (1.0 - scores["agreement"])
        return drop, scores

    return validate


def make_ranker(
    engine: str, data: EncodedSplit, fp32_logits: np.ndarray, exact: bool = False
) -> Ranker:
    """A candidate's ``deviation`` from fp32 on ``data`` (no labels needed)."""

    def distance(path: Path) -> float:
        return deviation(model_logits(engine, path, "int8", data, exact=exact), fp32_logits)

    return distance


def deviation(logits: np.ndarray, fp32_logits: np.ndarray) -> float:
    """Mean L1 distance between the two models' class probabilities: quantization damage
    measured without labels, and far less noisy than counting flipped answers."""
    return float(np.abs(softmax(logits) - softmax(fp32_logits)).sum(1).mean())


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
    """Try ``ready`` int8 models (a QAT export), then the variants, then the float fallback; on
    success the chosen model's files sit at ``out``."""
    attempts: list[Attempt] = []
    engine = quantizer.engine
    candidates = [(name, path) for name, path in (ready or {}).items()] + [
        (v, quantizer.workdir / f"{engine}-{v}" / Path(quantizer.int8_file).name)
        for v in quantizer.variants(method)
    ]
    for variant, candidate in candidates:
        with console.status(f"{engine}: quantizing ({variant})"):
            try:
                if variant not in (ready or {}):
                    quantizer.quantize(variant, candidate)
            except EdgeftError as exc:  # one calibration method failing leaves the others
                attempts.append(Attempt(variant, [], float("inf"), {}, error=str(exc)))
                console.print(f"{engine} int8 ({variant}): [yellow]failed[/]: {exc}")
                continue
            drop, scores = validate(candidate)
        attempts.append(Attempt(variant, [], drop, scores))
        console.print(f"{engine} int8 ({variant}): {_describe(drop, scores)}")
        if drop <= max_drop:
            _move(quantizer, candidate, out)
            return BudgetResult(variant, [], drop, scores, attempts)
    tried = [a for a in attempts if a.variant not in (ready or {}) and a.error is None]
    if not tried:
        raise BudgetExceeded(engine, max_drop, attempts)
    best = min(tried, key=lambda a: a.drop)
    console.print(
        f"{engine}: over the {max_drop:.2f}-point budget; keeping sensitive layers in float "
        f"(starting from {best.variant})"
    )
    candidate = quantizer.workdir / f"{engine}-restored" / Path(quantizer.int8_file).name
    limit = (
        int(len(quantizer.layers()) * MAX_FLOAT_SHARE)
        if max_float_layers is None
        else max_float_layers
    )
    kept = (
        quantizer.restore_accuracy(best.variant, candidate, validate, max_drop, limit, rank)
        if limit > 0
        else None
    )
    if kept is None:
        failure = f"keeping up to {limit} of the most sensitive layers in float did not fit"
        attempts.append(Attempt(best.variant, [], float("inf"), {}, error=failure))
        raise BudgetExceeded(engine, max_drop, attempts)
    drop, scores = validate(candidate)
    attempts.append(Attempt(best.variant, kept, drop, scores))
    if drop > max_drop:
        raise BudgetExceeded(engine, max_drop, attempts)
    console.print(
        f"{engine} int8 ({best.variant} + {len(kept)} float layers): {_describe(drop, scores)}"
    )
    _move(quantizer, candidate, out)
    return BudgetResult(best.variant, kept, drop, scores, attempts)


def greedy_keep_float(
    quantizer: Int8Quantizer,
    variant: str,
    out: Path,
    validate: Validator,
    max_drop: float,
    max_float_layers: int,
    rank: Ranker | None = None,
) -> list[str] | None:
    """Rank layers by how much closer to fp32 the model gets with that one layer in float
    (``rank``: the probability distance on unlabelled items, far less noisy than a labelled
    split's accuracy; default: on the validation split), keep the top 1, 2, 4, ... (at most
    ``max_float_layers``) until the budget holds, then bisect back to the fewest of them that
    hold it; that model is left at ``out``."""
    layers = quantizer.layers()
    probe = quantizer.workdir / "probe" / Path(quantizer.int8_file).name
    distance = rank or (lambda path: validate(path)[1]["deviation"])
    deviation: dict[str, float] = {}
    for layer in layers:
        quantizer.quantize(variant, probe, keep_float=[layer])
        deviation[layer] = distance(probe)
    ranking = sorted(layers, key=deviation.__getitem__)

    def fits(count: int) -> bool:
        quantizer.quantize(variant, out, keep_float=ranking[:count])
        return validate(out)[0] <= max_drop

    failing, count = 0, 1  # the most layers known not to fit, the count tried next
    while not fits(count):
        if count >= max_float_layers:
            return None
        failing, count = count, min(count * 2, max_float_layers)
    fitting = last = count
    while fitting - failing > 1:
        last = (failing + fitting) // 2
        if fits(last):
            fitting = last
        else:
            failing = last
    if last != fitting:  # the last model written did not fit: write the one that does
        fits(fitting)
    return ranking[:fitting]


def _describe(drop: float, scores: dict[str, Any]) -> str:
    parts = [f"{k} {v:.4f}" for k, v in headline(scores).items()]
    return f"{', '.join(parts)}; drop {drop:.2f} pt" if parts else f"drop {drop:.2f} pt"


def _move(quantizer: Int8Quantizer, candidate: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    for source in quantizer.files_of(candidate):
        shutil.move(source, out.parent / (out.stem + source.suffix))

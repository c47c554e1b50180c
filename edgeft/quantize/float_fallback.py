"""The float fallback: the fewest of the most sensitive layers kept in floating point that bring an
int8 model within its accuracy budget.

Layers are ranked by leave-one-out (the model with only that layer in float, measured against
fp32), then the top 1, 2, 4, ... are kept in float until the budget holds, and a bisection
finds the fewest of them that hold it. Every engine can use it; OpenVINO prefers NNCF's own
accuracy control where that applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

from edgeft.quantize.judging import Ranker, Validator


class LayerQuantizer(Protocol):
    """What the fallback needs of an engine's quantizer (``Int8Quantizer`` is one)."""

    workdir: Path

    @property
    def int8_file(self) -> str: ...

    def layers(self) -> list[str]: ...

    def quantize(self, setting: str, out: Path, keep_float: Sequence[str] = ()) -> None: ...


@dataclass(frozen=True)
class FloatFallback:
    """What a fallback search starts from (``setting``), where its model goes (``out``), how it
    is judged (``validate`` within ``max_drop`` points), and its limits."""

    setting: str
    out: Path
    validate: Validator
    max_drop: float
    max_float_layers: int
    rank: Ranker | None = None  # distance to fp32 on unlabelled items; None: the validation split


def fewest_float_layers(quantizer: LayerQuantizer, search: FloatFallback) -> list[str] | None:
    """Rank layers by how much closer to fp32 the model gets with that one layer in float
    (``rank``: the probability distance on unlabelled items, far less noisy than a labelled
    split's accuracy; default: on the validation split), keep the top 1, 2, 4, ... (at most
    ``max_float_layers``) until the budget holds, then bisect back to the fewest of them that
    hold it; that model is left at ``out``."""
    setting, out, validate = search.setting, search.out, search.validate
    max_drop, max_float_layers = search.max_drop, search.max_float_layers
    layers = quantizer.layers()
    probe = quantizer.workdir / "probe" / Path(quantizer.int8_file).name
    distance = search.rank or partial(_deviation, validate)
    deviation: dict[str, float] = {}
    for layer in layers:
        quantizer.quantize(setting, probe, keep_float=[layer])
        deviation[layer] = distance(probe)
    ranking = sorted(layers, key=deviation.__getitem__)

    def fits(count: int) -> bool:
        quantizer.quantize(setting, out, keep_float=ranking[:count])
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


def _deviation(validate: Validator, path: Path) -> float:
    """The validator's own distance from fp32, where no ranker was given."""
    deviation = validate(path)[1].deviation
    if deviation is None:
        raise ValueError("the float fallback needs a ranker or a validator that measures deviation")
    return deviation

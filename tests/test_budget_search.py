"""The budget loop's own decisions, with a quantizer that writes what it was asked for (the setting
and the layers kept in float) and a validator and timer that score that, so the search itself is
what runs (the engines run end to end in test_quantize.py and test_qat.py):

- the float fallback doubles its count of ranked layers until the budget holds, then bisects back
  to the fewest that hold it;
- among candidates within budget, one slower than fp32 on this host loses to a faster one, and
  where every one is slower none ships unless the caller allows it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from rich.console import Console

from edgeft.bundle.manifest import Int8Speed
from edgeft.quantize import QuantizationScheme
from edgeft.quantize.backends.base import Int8Quantizer
from edgeft.quantize.budget import BudgetOptions, SlowerThanFp32, quantize_within_budget
from edgeft.quantize.float_fallback import FloatFallback, fewest_float_layers
from edgeft.quantize.judging import CandidateScores, Judges
from edgeft.runtime.scoring import EncodedSplit

LAYERS = [f"layer{i}" for i in range(10)]
HARMFUL = {"layer2", "layer5", "layer7"}  # each costs 2 points while quantized


class _RecordingQuantizer(Int8Quantizer):
    engine = "recording"
    int8_file = "model.json"

    def settings(self, method: str) -> list[str]:
        return method.split(",")

    def quantize(self, setting: str, out: Path, keep_float: Sequence[str] = ()) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"setting": setting, "keep_float": list(keep_float)}))

    def layers(self) -> list[str]:
        return LAYERS


def _written(path: Path) -> dict:
    return json.loads(path.read_text())


def _validate(path: Path) -> tuple[float, CandidateScores]:
    drop = 2.0 * len(HARMFUL - set(_written(path)["keep_float"]))
    return drop, CandidateScores(deviation=drop)


def _quantizer(tmp_path: Path) -> _RecordingQuantizer:
    empty = EncodedSplit([], None, [])
    return _RecordingQuantizer(tmp_path / "fp32", empty, QuantizationScheme(), tmp_path)


def test_the_fewest_ranked_layers_that_fit_are_kept_and_written(tmp_path: Path) -> None:
    out = tmp_path / "int8" / "model.json"
    kept = fewest_float_layers(
        _quantizer(tmp_path), FloatFallback("minmax", out, _validate, 1.0, 8)
    )
    # doubling reaches 4 layers; 3 (the harmful ones, ranked first) are enough
    assert kept is not None and set(kept) == HARMFUL
    assert _written(out)["keep_float"] == kept


def test_no_count_within_the_limit_fits(tmp_path: Path) -> None:
    out = tmp_path / "int8" / "model.json"
    search = FloatFallback("minmax", out, _validate, 1.0, 2)
    assert fewest_float_layers(_quantizer(tmp_path), search) is None


DROPS = {"slow": 0.2, "over": 3.0, "fast": 0.5, "faster": 0.4}  # points, per setting
SPEEDUPS = {"slow": 0.4, "fast": 1.5, "faster": 1.8}  # fp32 p50 over int8 p50, per setting


def _validate_setting(path: Path) -> tuple[float, CandidateScores]:
    return DROPS[_written(path)["setting"]], CandidateScores()


def _time(speedups: dict[str, float], timed: list[str]):
    def time(path: Path) -> Int8Speed:
        setting = _written(path)["setting"]
        timed.append(setting)
        speedup = speedups[setting]
        return Int8Speed(speedup=speedup, fp32_p50_ms=1.0, int8_p50_ms=round(1.0 / speedup, 3))

    return time


def _search(
    tmp_path: Path,
    settings: str,
    speedups: dict[str, float],
    timed: list[str],
    allow_slower: bool = False,
):
    out = tmp_path / "bundle" / "model.json"
    result = quantize_within_budget(
        _quantizer(tmp_path), out, BudgetOptions(settings, 1.0, allow_slower=allow_slower),
        Judges(_validate_setting, time=_time(speedups, timed)), Console(quiet=True),
    )  # fmt: skip
    return result, _written(out)["setting"]


def test_a_slower_candidate_within_budget_loses_to_a_faster_one(tmp_path: Path) -> None:
    timed: list[str] = []
    result, shipped = _search(tmp_path, "slow,over,fast,faster", SPEEDUPS, timed)
    # "slow" fits first but runs at 0.4x fp32's speed: the search goes on and stops at the first
    # candidate within budget that beats fp32; the over-budget one is never timed
    assert shipped == result.accepted.setting == "fast"
    assert timed == ["slow", "fast"]
    assert result.accepted.speed is not None and result.accepted.speed.speedup == 1.5
    assert [a.setting for a in result.attempts] == ["slow", "over", "fast"]
    assert result.attempts[0].slower_than_fp32 and not result.attempts[2].slower_than_fp32


ALL_SLOWER = {"slow": 0.4, "fast": 0.9, "faster": 0.7}


def test_when_every_candidate_within_budget_is_slower_none_ships(tmp_path: Path) -> None:
    timed: list[str] = []
    with pytest.raises(SlowerThanFp32, match=r"fast: 1\.111 ms against 1\.000 ms.*0\.90x") as e:
        _search(tmp_path, "slow,over,fast,faster", ALL_SLOWER, timed)
    assert timed == ["slow", "fast", "faster"]
    assert e.value.best.setting == "fast" and len(e.value.attempts) == 4
    assert not (tmp_path / "bundle" / "model.json").exists()


def test_allowed_slower_the_fastest_ships(tmp_path: Path) -> None:
    timed: list[str] = []
    result, shipped = _search(tmp_path, "slow,over,fast,faster", ALL_SLOWER, timed, True)
    assert shipped == result.accepted.setting == "fast"
    assert timed == ["slow", "fast", "faster"]
    assert (
        result.accepted.speed is not None and result.accepted.speed.speedup == 0.9
    )  # the caller warns


def test_without_a_timer_the_first_candidate_within_budget_ships(tmp_path: Path) -> None:
    out = tmp_path / "bundle" / "model.json"
    result = quantize_within_budget(
        _quantizer(tmp_path), out, BudgetOptions("slow,fast", 1.0), Judges(_validate_setting),
        Console(quiet=True),
    )  # fmt: skip
    assert (
        result.accepted.setting == _written(out)["setting"] == "slow"
        and result.accepted.speed is None
    )

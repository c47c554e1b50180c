"""The float fallback's search over its layer ranking: double the count until the budget holds,
then bisect back to the fewest layers that hold it. The quantizer here writes which layers it
kept in float and the validator scores that, so the search itself is what runs (the engines'
fallback runs end to end in test_quantize.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from edgeft.quantize import QuantizationScheme
from edgeft.quantize.backends.base import Int8Quantizer
from edgeft.quantize.float_fallback import fewest_float_layers
from edgeft.runtime.scoring import EncodedSplit

LAYERS = [f"layer{i}" for i in range(10)]
HARMFUL = {"layer2", "layer5", "layer7"}  # each costs 2 points while quantized


class _RecordingQuantizer(Int8Quantizer):
    engine = "recording"
    int8_file = "model.json"

    def settings(self, method: str) -> list[str]:
        return [method]

    def quantize(self, setting: str, out: Path, keep_float: Sequence[str] = ()) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(list(keep_float)))

    def layers(self) -> list[str]:
        return LAYERS


def _validate(path: Path) -> tuple[float, dict]:
    quantized_harm = HARMFUL - set(json.loads(path.read_text()))
    drop = 2.0 * len(quantized_harm)
    return drop, {"deviation": drop}


def _quantizer(tmp_path: Path) -> _RecordingQuantizer:
    empty = EncodedSplit([], None, [])
    return _RecordingQuantizer(tmp_path / "fp32", empty, QuantizationScheme(), tmp_path)


def test_the_fewest_ranked_layers_that_fit_are_kept_and_written(tmp_path: Path) -> None:
    out = tmp_path / "int8" / "model.json"
    kept = fewest_float_layers(_quantizer(tmp_path), "minmax", out, _validate, 1.0, 8)
    # doubling reaches 4 layers; 3 (the harmful ones, ranked first) are enough
    assert kept is not None and set(kept) == HARMFUL
    assert json.loads(out.read_text()) == kept


def test_no_count_within_the_limit_fits(tmp_path: Path) -> None:
    out = tmp_path / "int8" / "model.json"
    assert fewest_float_layers(_quantizer(tmp_path), "minmax", out, _validate, 1.0, 2) is None

"""What ``quantize`` records about int8 models, typed: an int8 entry's details
(``ModelEntry.int8``) and the engines and schemes that got none (``Manifest.int8_failures``).

The stored form does not change: a record read and written back is the same JSON, key for key
and in order, and bundles written before a field existed (or under another name) still read.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from edgeft.bundle import (
    Bundle,
    ImagePreprocessing,
    Manifest,
    ModelEntry,
    TensorSpec,
    stage_bundle,
    write_manifest,
)
from edgeft.bundle.manifest import (
    OVER_BUDGET,
    SLOWER,
    BestCandidate,
    ClassDelta,
    Confirmation,
    DropInterval,
    Fp32Agreement,
    Int8Details,
    Int8Failure,
    Int8Speed,
)
from edgeft.errors import BundleError

_ATTEMPT = {
    "setting": "minmax",
    "keep_float": ["/0/Conv"],
    "drop": 0.0,
    "scores": {"accuracy": 1.0, "macro_f1": 1.0, "agreement": 1.0},
    "error": None,
    "speed": {"fp32_p50_ms": 1.0, "int8_p50_ms": 2.0, "speedup": 0.5, "batch": 1},
}
# As ``quantize`` writes them (taken from a run), every optional key present.
DETAILS: dict[str, Any] = {
    "setting": "minmax",
    "method": "auto",
    "max_accuracy_drop": 1.0,
    "val_drop_points": 0.667,
    "budget_metric": "accuracy",
    "per_class_delta_points": {
        "cold": {"recall": 0.0, "f1": -0.67},
        "warm": {"recall": -1.33, "f1": -0.66},
    },
    "kept_float": ["/0/Conv"],
    "attempts": [_ATTEMPT],
    "val_drop_interval": {"drop": 0.667, "low": 0.0, "high": 2.0},
    "budget_resolution": "within budget on 150 items, but the drop's 95% interval reaches 2.00",
    "confirmation": {
        "items": 100,
        "drop_points": 0.0,
        "drop_interval": {"drop": 0.0, "low": -1.0, "high": 1.0},
    },
    "model_type": "cnn",
    "speed": {"fp32_p50_ms": 1.0, "int8_p50_ms": 2.0, "speedup": 0.5, "batch": 1},
    "unlabelled": {"items": 510, "agreement": 1.0, "deviation": 5.82261634463066e-08},
    "graph_rewrites": {"biases_corrected": 1},
    "exact_arithmetic": False,
    "calibration": {"recipe": {"name": "default-50", "size": 50}, "size": 50, "fingerprint": "ab"},
}
FAILURE: dict[str, Any] = {
    "engine": "onnxruntime",
    "scheme": "u8s7",
    "targets": ["x86-avx2-no-vnni"],
    "best": {
        "setting": "minmax",
        "float_layers": 0,
        "drop": 50.0,
        "accuracy": 0.5,
        "macro_f1": 0.3333333333333333,
        "agreement": 0.5,
    },
    "command": "edgeft quantize fp32 --out NEW_OUT --engine onnxruntime --max-accuracy-drop 50.01",
    "why": SLOWER,
    "reason": "u8s7 onnxruntime: no int8 model within the 1.00-point budget (tried minmax)",
    "attempts": [_ATTEMPT],
}


def _without(record: dict[str, Any], *keys: str, **values: Any) -> dict[str, Any]:
    return {k: v for k, v in copy.deepcopy(record).items() if k not in keys} | values


@pytest.mark.parametrize(
    "details",
    [
        DETAILS,
        # no labels: no interval, no note; no confirmation slice, untimed, no unlabelled items
        _without(
            DETAILS,
            "val_drop_interval",
            "budget_resolution",
            "unlabelled",
            budget_metric="agreement",
            confirmation=None,
            speed=None,
            per_class_delta_points={},
        ),
    ],
)
def test_int8_details_read_and_written_back_are_the_same_json(details: dict[str, Any]) -> None:
    typed = Int8Details.from_dict(details)
    assert json.dumps(typed.to_dict()) == json.dumps(details)  # keys, values and their order
    assert Int8Details.from_dict(typed.to_dict()) == typed


def test_int8_details_typed_fields() -> None:
    int8 = Int8Details.from_dict(DETAILS)
    assert int8.val_drop_points == 0.667 and int8.max_accuracy_drop == 1.0
    assert int8.val_drop_interval == DropInterval(drop=0.667, low=0.0, high=2.0)
    assert int8.kept_float == ["/0/Conv"] and int8.float_layers == 1
    assert int8.speed == Int8Speed(fp32_p50_ms=1.0, int8_p50_ms=2.0, speedup=0.5, batch=1)
    assert int8.speedup == 0.5
    assert int8.per_class_delta_points["warm"] == ClassDelta(recall=-1.33, f1=-0.66)
    assert int8.confirmation == Confirmation(100, 0.0, DropInterval(0.0, -1.0, 1.0))
    assert int8.unlabelled == Fp32Agreement(510, 1.0, 5.82261634463066e-08)
    assert int8.graph_rewrites == {"biases_corrected": 1} and int8.exact_arithmetic is False
    assert int8.budget_resolution is not None and int8.extra == {}


def test_older_and_partial_int8_details_still_read() -> None:
    # before ``setting`` it was ``variant``; schema 1 kept the scheme in details; no metric
    # recorded meant accuracy; nothing timed, confirmed or measured unlabelled yet
    older = _without(
        DETAILS,
        "setting",
        "budget_metric",
        "confirmation",
        "speed",
        "unlabelled",
        "model_type",
        "graph_rewrites",
        "exact_arithmetic",
        variant="minmax",
        scheme={"activations": "u8"},
    )
    int8 = Int8Details.from_dict(older)
    assert int8.setting == "minmax" and int8.budget_metric == "accuracy"
    assert int8.speed is None and int8.speedup is None and int8.confirmation is None
    assert int8.extra == {"scheme": {"activations": "u8"}}
    # a QAT candidate was never held to the budget
    candidate = Int8Details.from_dict({"source": "qat", "max_relative_deviation_vs_torch_qat": 0.1})
    assert candidate.val_drop_points is None and candidate.kept_float is None
    assert candidate.float_layers is None and candidate.val_drop_interval is None
    assert candidate.per_class_delta_points == {} and candidate.extra["source"] == "qat"
    # what validation reads of a hand-made entry
    budget = Int8Details.from_dict({"max_accuracy_drop": 1, "budget_metric": "recall:warm"})
    assert budget.max_accuracy_drop == 1 and budget.budget_metric == "recall:warm"


def test_int8_failures_read_and_written_back_are_the_same_json() -> None:
    failure = Int8Failure.from_dict(FAILURE)
    assert json.dumps(failure.to_dict()) == json.dumps(FAILURE)
    assert failure.engine == "onnxruntime" and failure.scheme == "u8s7" and failure.why == SLOWER
    assert failure.command.startswith("edgeft quantize fp32")
    assert failure.best == BestCandidate(
        "minmax", 0, 50.0, {"accuracy": 0.5, "macro_f1": 0.3333333333333333, "agreement": 0.5}
    )
    every_setting_failed = _without(FAILURE, best=None)
    assert Int8Failure.from_dict(every_setting_failed).to_dict() == every_setting_failed


def test_older_int8_failures_still_read() -> None:
    # before ``why`` every failure was over budget; before ``setting`` it was ``variant``
    best = {"variant": "minmax", "float_layers": 2, "drop": 1.5, "accuracy": 0.9}
    older = _without(FAILURE, "why", best=best)
    failure = Int8Failure.from_dict(older)
    assert failure.why == OVER_BUDGET
    assert failure.best == BestCandidate("minmax", 2, 1.5, {"accuracy": 0.9})


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (_without(DETAILS, val_drop_points="0.5"), "int8 details are malformed"),
        (_without(DETAILS, speed={"speedup": 1.0}), "int8 details are malformed"),
        (_without(DETAILS, kept_float="/0/Conv"), "int8 details are malformed"),
        (_without(DETAILS, val_drop_interval=[0, 1, 2]), "drop interval"),
        (["not", "an", "object"], "int8 details"),
    ],
)
def test_malformed_int8_details_name_the_problem(record: Any, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        Int8Details.from_dict(record)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (_without(FAILURE, "command"), "int8 failure is malformed"),
        (_without(FAILURE, best={"setting": "minmax"}), "int8 failure is malformed"),
        ("over budget", "int8 failure"),
    ],
)
def test_malformed_int8_failures_name_the_problem(record: Any, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        Int8Failure.from_dict(record)


def test_a_bundle_reads_its_int8_records_typed(tmp_path: Path) -> None:
    manifest = Manifest(
        task="image-classification",
        labels=["cold", "warm"],
        preprocessing=ImagePreprocessing(crop=(16, 16), resize=16),
        inputs=[TensorSpec("input", (-1, 3, 16, 16), "float32")],
        outputs=[TensorSpec("logits", (-1, 2), "float32")],
        models=[
            ModelEntry("model.onnx", "onnxruntime", "fp32", details={"opset": 17}),
            ModelEntry("model.int8-u8s8.onnx", "onnxruntime", "int8", details=DETAILS),
        ],
        provenance={"quantized_from": "fp32", "int8_failures": [FAILURE]},
    )
    with stage_bundle(tmp_path / "b") as staging:
        for entry in manifest.models:
            (staging / entry.path).write_bytes(b"weights")
        write_manifest(staging, manifest)
    loaded = Bundle.load(tmp_path / "b").manifest
    fp32, int8 = loaded.models
    assert fp32.int8 is None and fp32.details == {"opset": 17}
    assert int8.details == DETAILS and int8.int8 == Int8Details.from_dict(DETAILS)
    assert loaded.int8_failures == [Int8Failure.from_dict(FAILURE)]
    stored = json.loads((tmp_path / "b" / "edgeft.json").read_text())
    assert json.dumps(stored["models"][1]["details"]) == json.dumps(DETAILS)
    # a bundle quantized with every model accepted, or never quantized, lists none
    assert Manifest.from_dict(stored | {"provenance": {}}).int8_failures == []

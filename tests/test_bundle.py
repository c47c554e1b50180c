"""The bundle contract: atomic write, hash-checked load, clear refusals."""

import json
from pathlib import Path

import pytest

from edgeft.bundle import (
    MANIFEST_NAME,
    Bundle,
    ImagePreprocessing,
    Manifest,
    ModelEntry,
    TensorSpec,
    stage_bundle,
    write_manifest,
)
from edgeft.errors import BundleError


def _manifest() -> Manifest:
    return Manifest(
        task="image-classification",
        labels=["ok", "defect"],
        preprocessing=ImagePreprocessing(crop=(224, 224), resize=256),
        inputs=[TensorSpec("input", (-1, 3, 224, 224), "float32")],
        outputs=[TensorSpec("logits", (-1, 2), "float32")],
        models=[
            ModelEntry("model.onnx", "onnxruntime", "fp32"),
            ModelEntry("openvino/model.xml", "openvino", "fp32"),
        ],
        provenance={"base_model": "mobilenet_v2"},
    )


def _write(out: Path, payload: bytes = b"weights", overwrite: bool = False) -> Bundle:
    with stage_bundle(out, overwrite=overwrite) as staging:
        (staging / "model.onnx").write_bytes(payload)
        (staging / "openvino").mkdir()
        (staging / "openvino" / "model.xml").write_text("<net/>")
        (staging / "openvino" / "model.bin").write_bytes(payload * 2)
        write_manifest(staging, _manifest())
    return Bundle.load(out)


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    bundle = _write(tmp_path / "b")
    m = bundle.manifest
    assert m.labels == ["ok", "defect"] and m.task == "image-classification"
    assert m.preprocessing == ImagePreprocessing(crop=(224, 224), resize=256)
    assert m.inputs[0].shape == (-1, 3, 224, 224)
    assert set(m.files) == {"model.onnx", "openvino/model.xml", "openvino/model.bin"}
    assert m.model("openvino").path == "openvino/model.xml"
    assert m.provenance == {"base_model": "mobilenet_v2"}
    assert bundle.path_of(m.model(precision="fp32")).read_bytes() == b"weights"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging left behind"


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "b")
    (tmp_path / "b" / "openvino" / "model.bin").write_bytes(b"evil weights!!")
    with pytest.raises(BundleError, match=r"openvino/model.bin does not match its sha256"):
        Bundle.load(tmp_path / "b")


def test_missing_file_and_missing_manifest_are_half_written(tmp_path: Path) -> None:
    _write(tmp_path / "b")
    (tmp_path / "b" / "model.onnx").unlink()
    with pytest.raises(BundleError, match=r"model\.onnx is missing"):
        Bundle.load(tmp_path / "b")
    (tmp_path / "b" / MANIFEST_NAME).unlink()
    with pytest.raises(BundleError, match="not a bundle"):
        Bundle.load(tmp_path / "b")


def test_interrupted_write_leaves_the_old_bundle_untouched(tmp_path: Path) -> None:
    _write(tmp_path / "b", b"good")
    with pytest.raises(KeyboardInterrupt), stage_bundle(tmp_path / "b", overwrite=True) as staging:
        (staging / "model.onnx").write_bytes(b"half")
        raise KeyboardInterrupt
    assert Bundle.load(tmp_path / "b").path_of("model.onnx").read_bytes() == b"good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    _write(tmp_path / "b", b"one")
    with pytest.raises(BundleError, match="already exists"):
        _write(tmp_path / "b", b"two")
    assert (
        _write(tmp_path / "b", b"two", overwrite=True).path_of("model.onnx").read_bytes() == b"two"
    )


def _edit_manifest(root: Path, **changes: object) -> None:
    path = root / MANIFEST_NAME
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"schema_version": 99}, "schema_version 99 is not supported"),
        ({"task": "segmentation"}, "task 'segmentation'"),
        ({"labels": []}, "labels must be a non-empty list"),
        ({"preprocessing": {"kind": "audio"}}, "kind 'audio'"),
        (
            {"models": [{"path": "x.onnx", "engine": "onnxruntime", "precision": "fp32"}]},
            "'x.onnx' is not listed",
        ),
        (
            {"models": [{"path": "model.onnx", "engine": "tensorflow", "precision": "fp32"}]},
            "engine 'tensorflow'",
        ),
        (
            {"files": {"../../etc/passwd": "0" * 64, "model.onnx": "0", "openvino/model.xml": "0"}},
            "not a plain path inside the bundle",
        ),
        (
            {"files": {"/etc/passwd": "0" * 64, "model.onnx": "0", "openvino/model.xml": "0"}},
            "not a plain path inside the bundle",
        ),
        (
            {"preprocessing": {"kind": "text", "tokenizer": "../tokenizer.json", "max_length": 8}},
            "tokenizer path '../tokenizer.json' is not a plain path inside the bundle",
        ),
        (
            {"preprocessing": {"kind": "text", "tokenizer": "tokenizer.json", "max_length": 8}},
            "tokenizer file 'tokenizer.json' is not listed",  # so it would not be hash-checked
        ),
        (
            {"acceptance": "/tmp/set.json"},
            "acceptance set path '/tmp/set.json' is not a plain path",
        ),
    ],
)
def test_malformed_manifest_names_the_problem(tmp_path: Path, changes: dict, message: str) -> None:
    _write(tmp_path / "b")
    _edit_manifest(tmp_path / "b", **changes)
    with pytest.raises(BundleError, match=message):
        Bundle.load(tmp_path / "b")


def test_manifest_that_is_not_json_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "b")
    (tmp_path / "b" / MANIFEST_NAME).write_text('{"schema_version": 1, "task": ')
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.load(tmp_path / "b")


def test_missing_model_kind_lists_what_is_there(tmp_path: Path) -> None:
    bundle = _write(tmp_path / "b")
    with pytest.raises(
        BundleError, match=r"no openvino/int8 model \(has: onnxruntime/fp32, openvino/fp32\)"
    ):
        bundle.manifest.model("openvino", "int8")

"""The bundle contract: atomic write, hash-checked load, clear refusals."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
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
        (
            {"acceptance": "acceptance/../../set.json"},
            "acceptance set path 'acceptance/../../set.json' is not a plain path",
        ),
        (
            {"models": [{"path": "../model.onnx", "engine": "onnxruntime", "precision": "fp32"}]},
            "model path '../model.onnx' is not a plain path",
        ),
        (
            {
                "models": [
                    {
                        "path": "model.onnx",
                        "engine": "onnxruntime",
                        "precision": "fp32",
                        "reference_outputs": "/etc/outputs.npy",
                    }
                ]
            },
            "reference outputs path '/etc/outputs.npy' is not a plain path",
        ),
        (
            {"files": {"model.onnx": "0", "openvino/model.xml": "0"}},
            "IR weights file 'openvino/model.bin' is not listed",
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


def test_symlink_out_of_the_bundle_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "b")
    outside = tmp_path / "elsewhere.onnx"
    outside.write_bytes(b"weights")
    (tmp_path / "b" / "model.onnx").unlink()
    (tmp_path / "b" / "model.onnx").symlink_to(outside)
    with pytest.raises(BundleError, match="outside the bundle"):
        Bundle.load(tmp_path / "b")


def test_swap_cut_between_its_renames_is_rolled_back_on_load(tmp_path: Path) -> None:
    """Where folders cannot be exchanged, the old bundle waits at .b.old while the new one is
    renamed in; a crash there leaves no ``b``, and the next load puts the old one back."""
    _write(tmp_path / "b", b"old")
    (tmp_path / "b").rename(tmp_path / ".b.old")
    (tmp_path / ".b.partial-999999999-x").mkdir()  # a killed writer's staging folder
    assert Bundle.load(tmp_path / "b").path_of("model.onnx").read_bytes() == b"old"
    _write(tmp_path / "b", b"new", overwrite=True)  # the next writer clears what was left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


_WRITER = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.test_bundle import _manifest
import edgeft.atomic
from edgeft.bundle import stage_bundle, write_manifest

if sys.argv[2] == "two renames":  # the path taken where folders cannot be exchanged
    edgeft.atomic._exchange = lambda a, b: False
out, version = Path(sys.argv[1]), 0
while True:
    version += 1
    with stage_bundle(out, overwrite=True) as staging:
        for name in ("model.onnx", "openvino/model.xml", "openvino/model.bin"):
            (staging / name).parent.mkdir(exist_ok=True)
            (staging / name).write_bytes(bytes([version % 256]) * 300_000)
        manifest = _manifest()
        manifest.provenance = {{"version": version}}
        write_manifest(staging, manifest)
"""


@pytest.mark.parametrize("swap", ["exchange", "two renames"])
def test_writer_killed_at_random_points_always_leaves_a_loadable_bundle(
    tmp_path: Path, swap: str
) -> None:
    """SIGKILL a process that rewrites a bundle in a loop, 20 times at random instants: each
    time, the path holds a complete bundle that passes its hash check (the old or a new one)."""
    out = tmp_path / "b"
    _write(out)
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(_WRITER.format(root=str(Path(__file__).parents[1]))))
    rng = random.Random(7)
    versions = []
    for _ in range(20):
        writer = subprocess.Popen([sys.executable, str(script), str(out), swap])
        time.sleep(rng.uniform(0.4, 1.0))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        versions.append(Bundle.load(out).manifest.provenance.get("version", 0))
        assert len(list(tmp_path.glob(".b.*"))) <= 2, "killed writers' leftovers pile up"
    assert sum(v > 0 for v in versions) >= 8, f"the writer rarely got to write: {versions}"

"""Scale-out on existing engines: the Triton repository laid out parses with Triton's own
protobuf schema (it ships in tritonclient) and says what the bundle says; the OVMS and KServe
files are well-formed and point at the production version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from edgeft.bundle import Bundle
from edgeft.errors import EdgeftError
from edgeft.repository import ModelRepository
from edgeft.repository.layouts import write_layout

TYPES = {"float32": model_config_pb2.TYPE_FP32, "int64": model_config_pb2.TYPE_INT64}


@pytest.fixture(scope="module")
def repo(
    zoo_bundle: Bundle, text_bundle: Bundle, tmp_path_factory: pytest.TempPathFactory
) -> ModelRepository:
    repository = ModelRepository(tmp_path_factory.mktemp("export") / "repo", create=True)
    for _ in range(2):
        repository.push(zoo_bundle.root, "cats", validate=False)
    repository.push(text_bundle.root, "tickets", validate=False)
    repository.promote("cats", 2)
    return repository


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_triton_config_parses_and_matches_each_bundle(
    repo: ModelRepository, tmp_path: Path, engine: str
) -> None:
    out = tmp_path / "triton"
    write_layout(repo, "triton", out, engine=engine)
    for name, version in (("cats", 2), ("tickets", 1)):
        manifest = Bundle.load(repo.version(name, version).path).manifest
        config = text_format.Parse(
            (out / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
        )
        assert config.name == name
        assert list(config.version_policy.specific.versions) == [version]
        if engine == "onnxruntime":
            assert (
                config.platform == "onnxruntime_onnx"
                and config.default_model_filename == "model.onnx"
            )
            assert (out / name / str(version) / "model.onnx").is_file()
        else:
            assert config.backend == "openvino" and config.default_model_filename == "model.xml"
            assert {p.name for p in (out / name / str(version)).iterdir()} == {
                "model.xml",
                "model.bin",
            }
        assert config.max_batch_size > 0 and config.HasField("dynamic_batching")
        for tensors, specs in ((config.input, manifest.inputs), (config.output, manifest.outputs)):
            assert [t.name for t in tensors] == [s.name for s in specs]
            for tensor, spec in zip(tensors, specs, strict=True):
                assert tensor.data_type == TYPES[spec.dtype]
                assert list(tensor.dims) == list(spec.shape[1:])  # the batch axis is Triton's
        assert config.output[0].label_filename == "labels.txt"
        assert (out / name / "labels.txt").read_text().split("\n")[:-1] == manifest.labels
    assert "triton:" in (out / "inferenceservice.yaml").read_text()


def test_ovms_config_pins_the_production_version(repo: ModelRepository, tmp_path: Path) -> None:
    out = tmp_path / "ovms"
    write_layout(repo, "ovms", out, engine="openvino")
    config = json.loads((out / "config.json").read_text())
    entries = {c["config"]["name"]: c["config"] for c in config["model_config_list"]}
    assert entries["cats"]["model_version_policy"] == {"specific": {"versions": [2]}}
    assert entries["cats"]["base_path"] == "/models/cats"
    assert (out / "cats" / "2" / "model.xml").is_file() and (
        out / "cats" / "2" / "model.bin"
    ).is_file()
    assert "kserve-ovms" in (out / "inferenceservice.yaml").read_text()
    with pytest.raises(EdgeftError, match="already exists"):
        write_layout(repo, "ovms", out)
    with pytest.raises(EdgeftError, match="unknown layout format"):
        write_layout(repo, "torchserve", tmp_path / "x")

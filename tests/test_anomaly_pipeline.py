"""The anomaly task through the commands, on a small MVTec AD-layout folder made here: fit on
good parts, export (held to the fit on both engines), eval --json, predict with overlays, a
threshold moved without re-export, and the bad inputs each refused before anything is written."""

from __future__ import annotations

import base64
import io
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from edgeft.anomaly import AnomalyRecipe, fit_anomaly
from edgeft.anomaly.calibrate import ValidationDistances, recalibrate
from edgeft.anomaly.distance_graph import write_distance_graph
from edgeft.bundle import Bundle, write_manifest
from edgeft.bundle.anomaly_spec import AnomalySpec, ScoreScale
from edgeft.errors import BundleError, EdgeftError
from edgeft.evaluation.compare import compare_bundles
from edgeft.runtime.anomaly.detector import AnomalyDetector
from edgeft.runtime.anomaly.maps import defect_maps
from edgeft.runtime.anomaly.nearest import nearest_distances
from edgeft.runtime.anomaly.scores import normalise
from edgeft.runtime.anomaly.search import NearestSearch
from edgeft.runtime.engines import open_session
from tests.inspection_parts import SIZE, make_folder, make_variant_folder, texture
from tests.test_cli import run
from tests.test_serve import Server, _multipart, free_port, stop_server

FIT = ("--image-size", "96", "--bank-size", "200", "--val-share", "0.25")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("anomaly")
    data = make_folder(root / "parts")
    result = run(
        "finetune", "--task", "anomaly", "--data", str(data), "--out", str(root / "run"), *FIT
    )
    assert result.returncode == 0, result.stderr
    assert "scoring mixed, threshold by false-reject" in result.stdout
    result = run("export", str(root / "run"), "--out", str(root / "bundle"))
    assert result.returncode == 0, result.stderr
    return {"root": root, "data": data, "run": root / "run", "bundle": root / "bundle"}


def test_the_exported_model_agrees_with_the_fit_on_both_engines(fitted: dict[str, Path]) -> None:
    bundle = Bundle.load(fitted["bundle"])
    manifest = bundle.manifest
    assert manifest.task == "anomaly-detection" and manifest.labels == ["good", "defect"]
    assert manifest.anomaly is not None and manifest.anomaly.threshold == 0.5
    for rel in (manifest.anomaly.bank, manifest.anomaly.embeddings, manifest.anomaly.distance):
        assert rel in manifest.files  # hashed like every model file
    assert {m.engine for m in manifest.models} == {"onnxruntime", "openvino"}
    for entry in manifest.models:
        agreement = entry.details["agreement_with_fit"]
        assert agreement["items"] == 6 and agreement["verdicts_agree"] == 1.0
        assert agreement["max_map_deviation"] <= 0.01
    # the check passed with the banks in fp16: they are stored so, at half the run's size
    assert manifest.anomaly.bank_precision == "fp16"
    for name, rel in (
        ("bank.npy", manifest.anomaly.bank),
        ("embeddings.npy", "anomaly/embeddings.npy"),
    ):
        stored, fitted_bank = np.load(bundle.path_of(rel)), np.load(fitted["run"] / name)
        assert stored.dtype == np.float16 and stored.shape == fitted_bank.shape
        assert np.allclose(stored, fitted_bank, rtol=1e-3, atol=1e-3)


def test_banks_stay_fp32_where_the_validation_items_cannot_prove_fp16(
    fitted: dict[str, Path], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(fitted["run"], run_dir)
    validation = json.loads((run_dir / "validation.json").read_text())
    for item in validation["items"]:
        item["path"] = str(tmp_path / "moved" / Path(item["path"]).name)
    (run_dir / "validation.json").write_text(json.dumps(validation))
    result = run("export", str(run_dir), "--out", str(tmp_path / "bundle"))
    assert result.returncode == 0, result.stderr
    assert "memory bank (fp32)" in result.stdout
    manifest = Bundle.load(tmp_path / "bundle").manifest
    assert manifest.anomaly is not None and manifest.anomaly.bank_precision == "fp32"
    assert np.load(tmp_path / "bundle" / manifest.anomaly.bank).dtype == np.float32
    assert all("agreement_with_fit" not in m.details for m in manifest.models)


def test_validate_holds_each_engine_to_the_verdicts_recorded_at_export(
    fitted: dict[str, Path], tmp_path: Path
) -> None:
    bundle = Bundle.load(fitted["bundle"])
    assert bundle.manifest.acceptance is not None
    assert all(m.reference_outputs for m in bundle.manifest.models)
    result = run("validate", str(fitted["bundle"]), "--json", "--record", str(tmp_path / "v.json"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] and report["data"] == "acceptance set" and report["items"] == 6
    for model in report["models"]:
        assert model["recorded"]["agreement_with_recorded"] == 1.0
        assert model["scores"]["false_reject"] is not None
    # a box that computes another model: recorded scores that put an item across the threshold
    copy = tmp_path / "moved"
    shutil.copytree(fitted["bundle"], copy)
    entry = bundle.manifest.models[0]
    recorded = np.load(copy / entry.reference_outputs)
    recorded[0, 0] += 1e3 if recorded[0, 0] < bundle.manifest.anomaly.normaliser.centre else -1e3
    np.save(copy / entry.reference_outputs, recorded)
    rehashed = Bundle.load(copy, verify=False).manifest
    write_manifest(copy, rehashed)
    result = run("validate", str(copy), "--json", "--record", str(tmp_path / "w.json"))
    assert result.returncode == 1
    failed = json.loads(result.stdout)["models"][0]
    assert not failed["passed"] and "1 of 6 acceptance verdicts differ" in failed["reason"]


def test_eval_reports_image_and_pixel_figures_per_model(fitted: dict[str, Path]) -> None:
    result = run("eval", str(fitted["bundle"]), "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["engine"] for r in rows] == ["onnxruntime", "openvino"]
    for row in rows:
        assert row["items"] == 12 and row["defects"] == 6
        assert row["image_auroc"] >= 0.95  # bright scratches on a regular texture
        assert 0.5 < row["pixel_auroc"] <= 1.0 and 0.0 < row["pro"] <= 1.0
        assert row["escape"] == 0.0 and row["per_defect"]["scratch"]["defects"] == 6
    assert rows[0]["image_auroc"] == pytest.approx(rows[1]["image_auroc"], abs=0.02)


def test_predict_gives_verdicts_and_overlays(fitted: dict[str, Path], tmp_path: Path) -> None:
    data = fitted["data"]
    images = [data / "test" / "scratch" / "000.png", data / "test" / "good" / "000.png"]
    result = run(
        "predict", str(fitted["bundle"]), *map(str, images), "--overlay", str(tmp_path), "--json"
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows[0]["verdict"] == "defect" and rows[0]["score"] > rows[1]["score"]
    for row in rows:
        assert 0.0 < row["score"] <= 1.0 and row["threshold"] == 0.5
        with Image.open(row["overlay"]) as drawn:
            assert drawn.size == (SIZE, SIZE) and drawn.mode == "RGB"
    # the heat is where the scratch is: redder along its mask than away from it
    with (
        Image.open(rows[0]["overlay"]) as drawn,
        Image.open(data / "ground_truth/scratch/000_mask.png") as mask,
    ):
        red = np.asarray(drawn, dtype=float)[..., 0] - np.asarray(drawn, dtype=float)[..., 2]
        on = np.asarray(mask) > 127
    assert red[on].mean() > red[~on].mean()


def test_the_threshold_moves_without_re_export(fitted: dict[str, Path], tmp_path: Path) -> None:
    original = Bundle.load(fitted["bundle"])
    detector = AnomalyDetector(original)
    good = sorted((fitted["data"] / "test" / "good").iterdir())
    raw = np.sort(detector.outputs_of(good).raw)
    # between the two worst good parts: only the worst is flagged
    value = float(normalise(detector.spec, np.array([(raw[-1] + raw[-2]) / 2]))[0])
    result = run(
        "threshold", str(fitted["bundle"]), "--value", str(value), "--out", str(tmp_path / "v2")
    )
    assert result.returncode == 0, result.stderr
    moved = Bundle.load(tmp_path / "v2")
    assert moved.manifest.anomaly is not None and moved.manifest.anomaly.threshold == value
    rule = moved.manifest.anomaly.threshold_rule
    assert rule["rule"] == "set" and rule["previous"]["threshold"] == 0.5
    assert rule["from_bundle"] == original.fingerprint
    same = {k: v for k, v in original.manifest.files.items()}
    assert moved.manifest.files == same  # the same model files, hashes and all
    assert sum(r.defective for r in AnomalyDetector(moved).detect(good)) == 1
    assert Bundle.load(fitted["bundle"]).manifest.anomaly.threshold == 0.5  # untouched
    # by a false-reject rate on the line's own good parts, scored here
    result = run(
        "threshold", str(fitted["bundle"]), "--false-reject", "0", "--good",
        str(fitted["data"] / "test" / "good"), "--out", str(tmp_path / "v3"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    by_rate = AnomalyDetector(tmp_path / "v3")
    assert not any(r.defective for r in by_rate.detect(good))
    assert by_rate.spec.threshold_rule["good_parts"] == len(good)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--value", "1.5"), "outside the score range"),
        (("--value", "0"), "outside the score range"),
        (("--false-reject", "0.1"), "needs --good"),
        ((), "--value or as --false-reject"),
    ],
)
def test_a_bad_threshold_is_refused_before_writing(
    fitted: dict[str, Path], tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = run("threshold", str(fitted["bundle"]), *args, "--out", str(tmp_path / "bad"))
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "bad").exists()


def test_a_tampered_bank_is_refused_naming_it(fitted: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "tampered"
    shutil.copytree(fitted["bundle"], copy)
    bank = np.load(copy / "anomaly" / "bank.npy")
    np.save(copy / "anomaly" / "bank.npy", bank * 1.01)
    with pytest.raises(BundleError, match=r"anomaly/bank\.npy does not match its sha256"):
        AnomalyDetector(copy)
    result = run("predict", str(copy), str(fitted["data"] / "test" / "good" / "000.png"))
    assert result.returncode == 2 and "anomaly/bank.npy" in result.stderr


def test_bad_fits_are_refused_before_a_run_folder_exists(
    fitted: dict[str, Path], tmp_path: Path
) -> None:
    mixed = tmp_path / "mixed"
    shutil.copytree(fitted["data"], mixed)
    (mixed / "train" / "scratch").mkdir()
    texture(1).save(mixed / "train" / "scratch" / "x.png")
    cases = [
        ({"data": str(mixed)}, "holds scratch beside good/"),
        ({"data": str(fitted["data"]), "scoring": "best"}, "scoring 'best'"),
        ({"data": str(tmp_path / "nowhere")}, "no such folder"),
        ({"data": str(fitted["data"]), "val_share": 1.5}, "--val-share"),
        ({"data": str(fitted["data"]), "group_by": "variant"}, "no 'variant' in"),
    ]
    for knobs, message in cases:
        with pytest.raises(EdgeftError, match=message):
            fit_anomaly(AnomalyRecipe(**knobs, image_size=96, bank_size=200), tmp_path / "run")
        assert not (tmp_path / "run").exists()
    result = run(
        "finetune", "--task", "anomaly", "--data", str(fitted["data"]), "--epochs", "3",
        "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert result.returncode == 2 and "--epochs: not used by --task anomaly" in result.stderr
    assert not (tmp_path / "run").exists()
    result = run(
        "finetune",
        "--data",
        str(fitted["data"]),
        "--bank-size",
        "5",
        "--out",
        str(tmp_path / "run"),
    )
    assert result.returncode == 2 and "only used with --task anomaly" in result.stderr


def test_variants_and_gaussians_fit_export_and_route_by_the_nearest_good_part(
    tmp_path: Path,
) -> None:
    data = make_variant_folder(tmp_path / "parts")
    fit = run("finetune", "--task", "anomaly", "--data", str(data), "--group-by", "variant",
              "--gaussians", "16", "--out", str(tmp_path / "run"), *FIT)  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    assert "scaled per variant: ribbed (" in fit.stdout and "woven (" in fit.stdout
    assert "scoring all" in fit.stdout  # good parts only: the widest mix
    result = run("export", str(tmp_path / "run"), "--out", str(tmp_path / "bundle"))
    assert result.returncode == 0, result.stderr
    bundle = Bundle.load(tmp_path / "bundle")
    spec = bundle.manifest.anomaly
    assert spec is not None and [g.name for g in spec.groups] == ["ribbed", "woven"]
    assert len(spec.gaussian_channels) == 16
    for rel in (spec.embedding_groups, spec.gaussian_mean, spec.gaussian_precision):
        assert rel in bundle.manifest.files  # hashed like the banks
    # the ribbed parts sit farther from the bank: their own scales are wider
    ribbed, woven = spec.groups
    assert ribbed.patch_scale.centre > woven.patch_scale.centre
    for entry in bundle.manifest.models:
        assert entry.details["agreement_with_fit"]["verdicts_agree"] == 1.0
        detector = AnomalyDetector(bundle, entry=entry)
        parts = sorted((data / "test" / "good").glob("*.png"))
        outputs = detector.outputs_of(parts)
        expected = [0 if p.name.startswith("ribbed") else 1 for p in parts]
        assert outputs.group.tolist() == expected
    # an int8 model re-fits the scales of each variant, keeping their names
    val = ValidationDistances(outputs.grids, outputs.nearest_good, np.zeros(len(parts), bool),
                              outputs.group, outputs.gaussian)  # fmt: skip
    assert [g.name for g in recalibrate(spec, val).groups] == ["ribbed", "woven"]
    # the variant file is held to its hash, like the banks
    np.save(tmp_path / "bundle" / spec.embedding_groups, np.zeros(48, dtype=np.int32))
    with pytest.raises(BundleError, match=r"embedding_groups\.npy does not match its sha256"):
        AnomalyDetector(tmp_path / "bundle")


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 300),
    queries=st.integers(1, 50),
    chunk=st.integers(1, 64),
    seed=st.integers(0, 2**16),
)
def test_the_engine_search_is_the_brute_force_one(
    tmp_path_factory, rows, queries, chunk, seed
) -> None:
    """Any bank size and chunk, both engines: the nearest distance of every query, with the
    distance block an engine call holds bounded by the chunk, not by the bank."""
    graph = tmp_path_factory.getbasetemp() / "distance.onnx"
    if not graph.exists():
        write_distance_graph(graph)
    rng = np.random.default_rng(seed)
    bank = rng.normal(size=(rows, 8)).astype(np.float32)
    asked = rng.normal(size=(queries, 8)).astype(np.float32)
    expected = nearest_distances(asked, bank)
    for engine in ("onnxruntime", "openvino"):
        search = NearestSearch(
            open_session(engine, graph, precision="fp32"), bank, chunk, max_queries=16
        )
        np.testing.assert_allclose(search.distances(asked), expected, rtol=1e-4, atol=1e-4)
        assert search.peak_block_bytes == 4 * 16 * min(chunk, rows)


def test_maps_are_torchs_bilinear_upsampling() -> None:
    import torch
    import torch.nn.functional as F

    grids = np.random.default_rng(0).uniform(size=(2, 7, 5)).astype(np.float32)
    expected = F.interpolate(torch.from_numpy(grids)[:, None], size=(56, 40), mode="bilinear")[:, 0]
    np.testing.assert_allclose(defect_maps(grids, (56, 40), 0.0), expected.numpy(), atol=1e-5)
    smoothed = defect_maps(grids, (56, 40), 4.0)
    assert smoothed.shape == (2, 56, 40) and smoothed.std() < expected.numpy().std()
    flat = defect_maps(np.full((1, 7, 5), 3.0, dtype=np.float32), (56, 40), 4.0)
    np.testing.assert_allclose(
        flat, 3.0, rtol=1e-5
    )  # smoothing keeps a constant (weights sum to 1)


@given(
    threshold=st.floats(0.001, 0.999),
    scoring=st.sampled_from(["patch", "embedding", "mixed"]),
    spread=st.floats(1e-6, 1e3),
)
def test_the_anomaly_spec_survives_the_manifest(
    threshold: float, scoring: str, spread: float
) -> None:
    spec = AnomalySpec(
        scoring, ScoreScale(1.0, spread), ScoreScale(-2.0, 0.5), ScoreScale(0.3, 1.0),
        threshold=threshold, threshold_rule={"rule": "set"}, map_spread=spread,
    )  # fmt: skip
    assert AnomalySpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(BundleError, match="outside the score range"):
        spec.with_threshold(1.0, {})


@pytest.fixture(scope="module")
def anomaly_server(fitted: dict[str, Path]) -> Iterator[tuple[Server, int]]:
    """The bundle served from a repository (so a new threshold arrives as a new version) with
    gRPC beside REST and a prediction log."""
    repo = fitted["root"] / "repo"
    result = run(
        "repo", "push", str(fitted["bundle"]), str(repo), "--name", "parts", "--no-validate"
    )
    assert result.returncode == 0, result.stderr
    port = free_port()
    options = [
        "--grpc-port",
        str(port),
        "--log",
        str(fitted["root"] / "log.db"),
        "--max-request-mb",
        "8",
    ]
    running = Server(repo, options).__enter__()
    yield running, port
    stop_server(running)


def test_serve_answers_scores_verdicts_and_maps_over_v2(
    anomaly_server: tuple[Server, int], fitted: dict[str, Path]
) -> None:
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    server, grpc_port = anomaly_server
    detector = AnomalyDetector(fitted["bundle"], engine="onnxruntime")
    data = fitted["data"]
    images = detector.encoder.encode([data / "test/scratch/001.png", data / "test/good/002.png"])
    expected = detector.outputs(images)
    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.port}")
    assert client.is_model_ready("parts")
    metadata = client.get_model_metadata("parts")
    assert metadata["outputs"] == [
        {"name": "anomaly_score", "datatype": "FP32", "shape": [-1]},
        {"name": "defective", "datatype": "BOOL", "shape": [-1]},
        {"name": "anomaly_map", "datatype": "FP32", "shape": [-1, SIZE, SIZE]},
    ]
    assert metadata["parameters"]["task"] == "anomaly-detection"
    for binary in (True, False):
        tensor = httpclient.InferInput("input", list(images["input"].shape), "FP32")
        tensor.set_data_from_numpy(images["input"], binary_data=binary)
        result = client.infer("parts", [tensor])
        np.testing.assert_allclose(result.as_numpy("anomaly_score"), expected.scores, atol=1e-4)
        assert result.as_numpy("defective").tolist() == [True, False]
        got_map = result.as_numpy("anomaly_map")
        assert got_map.shape == (2, SIZE, SIZE) and np.abs(got_map - expected.maps).max() < 1e-3
    only = [httpclient.InferRequestedOutput("anomaly_score", binary_data=True)]
    result = client.infer("parts", [tensor], outputs=only)
    assert [o["name"] for o in result.get_response()["outputs"]] == ["anomaly_score"]
    client.close()
    grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    tensor = grpcclient.InferInput("input", list(images["input"].shape), "FP32")
    tensor.set_data_from_numpy(images["input"])
    result = grpc.infer("parts", [tensor])
    np.testing.assert_allclose(result.as_numpy("anomaly_score"), expected.scores, atol=1e-4)
    assert result.as_numpy("defective").tolist() == [True, False]
    assert result.as_numpy("anomaly_map").shape == (2, SIZE, SIZE)
    grpc.close()


def test_v1_predict_gives_verdicts_overlays_and_takes_feedback(
    anomaly_server: tuple[Server, int], fitted: dict[str, Path]
) -> None:
    server, _ = anomaly_server
    scratch = (fitted["data"] / "test/scratch/002.png").read_bytes()
    body, headers = _multipart([("a.png", scratch), ("b.png", scratch)])
    status, answer = server.json("POST", "/v1/predict?overlay=true", body=body, headers=headers)
    assert status == 200, answer
    first = answer["predictions"][0]
    assert first["verdict"] == "defect" and first["threshold"] == 0.5 and "id" in first
    with Image.open(io.BytesIO(base64.b64decode(first["overlay_png"]))) as drawn:
        assert drawn.size == (SIZE, SIZE)
    status, answer = server.json(
        "POST", "/v1/feedback", body=json.dumps({"id": first["id"], "label": "good"}).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert status == 200, answer
    # hostile or malformed: a 4xx, and the server keeps serving
    body, headers = _multipart([("bad.png", b"\x89PNG not really")])
    status, answer = server.json("POST", "/v1/predict", body=body, headers=headers)
    assert status == 400 and "not a readable image" in answer["error"]
    wrong = {
        "inputs": [
            {"name": "input", "datatype": "FP32", "shape": [1, 3, 8, 8], "data": [0.0] * 192}
        ]
    }
    status, answer = server.json("POST", "/v2/models/parts/infer", body=json.dumps(wrong).encode())
    assert status == 400 and "does not fit" in answer["error"]
    status, answer = server.json(
        "POST", "/v2/models/parts/infer",
        body=json.dumps(wrong | {"outputs": [{"name": "probabilities"}]}).encode(),
    )  # fmt: skip
    assert status == 400 and "unknown output 'probabilities'" in answer["error"]
    status, _ = server.json(
        "POST", "/v1/predict", body=scratch, headers={"Content-Type": "image/png"}
    )
    assert status == 200


def test_a_new_threshold_reaches_the_server_without_re_export(
    anomaly_server: tuple[Server, int], fitted: dict[str, Path], tmp_path: Path
) -> None:
    server, _ = anomaly_server
    good = (fitted["data"] / "test/good/000.png").read_bytes()
    status, answer = server.json(
        "POST", "/v1/predict", body=good, headers={"Content-Type": "image/png"}
    )
    score = answer["predictions"][0]["score"]
    assert status == 200 and answer["model_version"] == "1"
    lower = max(score / 2, 0.001)  # now this good part is flagged
    result = run(
        "threshold", str(fitted["bundle"]), "--value", str(lower), "--out", str(tmp_path / "v2")
    )
    assert result.returncode == 0, result.stderr
    repo = fitted["root"] / "repo"
    result = run(
        "repo", "push", str(tmp_path / "v2"), str(repo), "--name", "parts", "--no-validate"
    )
    assert result.returncode == 0, result.stderr
    assert run("repo", "promote", str(repo), "parts", "2").returncode == 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, answer = server.json(
            "POST", "/v1/predict", body=good, headers={"Content-Type": "image/png"}
        )
        if answer.get("model_version") == "2":
            break
        time.sleep(0.5)
    row = answer["predictions"][0]
    assert answer["model_version"] == "2" and row["threshold"] == pytest.approx(lower)
    assert row["score"] == pytest.approx(score, abs=1e-4) and row["verdict"] == "defect"


def test_quantize_holds_the_feature_network_to_the_detection_budget(
    fitted: dict[str, Path], tmp_path: Path
) -> None:
    """int8 feature networks on both engines, judged through the box's search and scoring on
    validation (good parts only here: the false-reject rate at the threshold), each with its
    own re-fitted scales; then validated, evaluated and served like fp32."""
    out = tmp_path / "int8"
    result = run("quantize", str(fitted["bundle"]), "--out", str(out), "--max-accuracy-drop", "40")
    assert result.returncode == 0, result.stderr + result.stdout
    manifest = Bundle.load(out).manifest
    int8 = [m for m in manifest.models if m.precision == "int8"]
    assert {m.engine for m in int8} == {"onnxruntime", "openvino"}
    for entry in int8:
        details = entry.int8
        assert details is not None and details.budget_metric == "false-reject"
        assert details.val_drop_points is not None and details.val_drop_points <= 40
        scales = entry.details["anomaly_scales"]
        assert set(scales) == {"patch_scale", "embedding_scale", "gaussian_scale", "normaliser",
                               "map_spread", "groups"}  # fmt: skip
        assert set(entry.metrics["val"]) >= {"items", "false_reject", "agreement"}
        assert entry.reference_outputs is not None  # what validate holds the box to
    assert manifest.anomaly == Bundle.load(fitted["bundle"]).manifest.anomaly  # fp32's as it was
    result = run("validate", str(out), "--json", "--record", str(tmp_path / "v.json"))
    assert result.returncode == 0, result.stderr
    assert {m["precision"] for m in json.loads(result.stdout)["models"]} >= {"fp32", "int8"}
    result = run("eval", str(out), "--json", "--model", "int8")
    assert result.returncode == 0, result.stderr
    for row in json.loads(result.stdout):
        assert row["precision"] == "int8" and row["image_auroc"] >= 0.9
    result = run(
        "quantize",
        str(fitted["bundle"]),
        "--out",
        str(tmp_path / "x"),
        "--budget-metric",
        "image-auroc",
    )
    assert result.returncode == 2 and "needs defects and good parts in validation" in result.stderr


def test_a_refit_adds_new_good_parts_and_keeps_the_split(
    fitted: dict[str, Path], tmp_path: Path
) -> None:
    new = tmp_path / "new-good"
    new.mkdir()
    for i in range(4):
        texture(900 + i).save(new / f"n{i}.png")
    shutil.copy(fitted["data"] / "test/good/000.png", new / "copy-of-test.png")  # left out
    out = tmp_path / "refit"
    result = run(
        "finetune",
        "--task",
        "anomaly",
        "--init-from",
        str(fitted["run"]),
        "--data",
        str(new),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    before = json.loads((fitted["run"] / "run.json").read_text())["dataset"]
    after = json.loads((out / "run.json").read_text())["dataset"]
    assert after["train_good"] == before["train_good"] + 4 and after["split"]["added_good"] == 4
    assert after["val"] == before["val"] and after["test"] == before["test"]
    assert json.loads((out / "recipe.json").read_text())["bank_size"] == 200  # the run's recipe
    # compared before promotion: both bundles on the recorded test split, side by side
    assert run("export", str(out), "--out", str(tmp_path / "refit-bundle")).returncode == 0
    repo = tmp_path / "repo"
    result = run("compare", str(tmp_path / "refit-bundle"), str(fitted["bundle"]), "--json",
                 "--push", str(repo), "--name", "parts")  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    (test,) = summary["environments"]
    assert test["name"] == "test" and test["items"] == 12  # 6 good, 6 scratched
    for key in ("image_auroc", "false_reject", "escape"):
        before, after = test["production"][key], test["candidate"][key]
        assert test["delta_points"][key] == round(100 * (after - before), 2)
    assert summary["pushed"] == {"model": "parts", "version": 1}
    production = Bundle.load(fitted["bundle"])
    classifier = Bundle(production.root, replace(production.manifest, task="classification"))
    with pytest.raises(EdgeftError, match="tasks differ"):
        compare_bundles(tmp_path / "refit-bundle", classifier)
    result = run(
        "finetune",
        "--task",
        "anomaly",
        "--init-from",
        str(fitted["run"]),
        "--data",
        str(new),
        "--image-size",
        "128",
        "--out",
        str(tmp_path / "x"),
    )
    assert result.returncode == 2 and "keeps its image_size" in result.stderr


def test_monitor_reads_the_served_log_and_exports_the_borderline_parts(
    anomaly_server: tuple[Server, int], fitted: dict[str, Path], tmp_path: Path
) -> None:
    """What the serve tests above logged: windows of the share flagged and the score against
    the bundle's validation reference, and the parts nearest the threshold for labelling."""
    server, _ = anomaly_server
    for image in sorted((fitted["data"] / "test").rglob("*.png")):
        status, _ = server.json(
            "POST", "/v1/predict", body=image.read_bytes(), headers={"Content-Type": "image/png"}
        )
        assert status == 200
    log, repo = fitted["root"] / "log.db", fitted["root"] / "repo"
    out = tmp_path / "borderline"
    result = run(
        "monitor",
        str(log),
        "--repo",
        str(repo),
        "--window",
        "4",
        "--json",
        "--export-uncertain",
        "3",
        "--out",
        str(out),
    )
    assert result.returncode in (0, 1), result.stderr  # 1: a figure left its band
    report = json.loads(result.stdout)
    analysed = [v for v in report["versions"] if v.get("windows")]
    assert analysed and all(w["items"] > 0 for v in analysed for w in v["windows"])
    # only kept inputs can be exported: the log keeps the low-confidence (near-threshold) ones
    assert 0 < len(list(out.rglob("*.png"))) <= 3


def test_the_report_page_shows_histogram_and_maps_in_chromium(
    fitted: dict[str, Path], tmp_path: Path
) -> None:
    from tests.browser import headless_chromium, only_from

    page_file = tmp_path / "report.html"
    result = run("eval", str(fitted["bundle"]), "--html", str(page_file))
    assert result.returncode == 0, result.stderr
    with headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 1600})
        elsewhere = only_from(page, page_file.as_uri())
        page.goto(page_file.as_uri())
        assert not elsewhere  # self-contained: a closed factory network
        models = page.locator("table").first.locator("tr")
        assert models.count() == 3  # header, onnxruntime/fp32, openvino/fp32
        histogram = page.locator("figure:has(svg)").first
        assert "threshold, 0.50" in histogram.inner_text()
        assert histogram.locator("svg").bounding_box()["width"] > 300
        images = page.locator(".grid img")
        assert images.count() >= 6  # six best hits at least (every scratch is found)
        widths = images.evaluate_all("imgs => imgs.map(i => i.complete && i.naturalWidth)")
        assert all(width == SIZE for width in widths)
        captions = page.locator("h2:has-text('Best hits') + p + .grid figcaption").all_inner_texts()
        assert captions and all(c.startswith("scratch/") and "defect" in c for c in captions)
    result = run(
        "eval", str(fitted["bundle"]), "--html", str(tmp_path / "x.html"), "--split", "train"
    )
    assert result.returncode == 2 and "val or test" in result.stderr

"""The monitoring loop on tiny data: a bundle with its reference profile, a server with a
prediction log, feedback, the monitor (drift flagged on a shifted stream, not on a like one),
the export for labelling, and the log's bounds."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from edgeft.bundle import Bundle
from edgeft.bundle.reference_statistics import ReferenceStatistics
from edgeft.cli import app as cli
from edgeft.monitor.active_learning import TO_LABEL, export_for_labelling, k_center
from edgeft.monitor.analysis import Window, monitor_log
from edgeft.monitor.prediction_log import LogLimits, ModelIdentity, PredictionLog, read_log
from edgeft.runtime import Predictor
from edgeft.serve import ServerConfig
from edgeft.serve.app import create_app
from tests.conftest import part_image

MODEL = "parts"


def test_the_bundle_carries_a_reference_profile_and_an_embedding_output(
    parts_bundle: Bundle,
) -> None:
    manifest = parts_bundle.manifest
    assert manifest.reference == "reference/profile.json"
    assert [o.name for o in manifest.outputs] == ["logits", "embedding"]
    profile = ReferenceStatistics.of(parts_bundle)
    assert len(profile) == manifest.provenance["dataset"]["sizes"]["val"]
    assert profile.embedding is not None and profile.embedding.shape[1] == 9  # 8 + error
    assert set(profile.statistics) >= {"brightness", "contrast", "sharpness", "width"}
    assert np.allclose(profile.statistics["width"], 48)
    summary = profile.summary["expected_calibration_error"]
    assert summary["after"] <= summary["before"] + 1e-9  # the temperature never makes it worse
    for engine in ("onnxruntime", "openvino"):
        predictor = Predictor(parts_bundle, engine=engine)
        image = part_image(np.random.default_rng(0), "ok")
        outputs = predictor.outputs(predictor.encoder.encode([image, image]))
        assert outputs.embedding is not None and outputs.embedding.shape == (2, 9)
        assert np.allclose(outputs.probabilities.sum(axis=1), 1, atol=1e-5)
    calibrated = Predictor(parts_bundle, engine="onnxruntime", calibrated=True)
    assert calibrated.temperature == pytest.approx(profile.temperature)


@pytest.fixture
def served(parts_bundle: Bundle, tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    log = tmp_path / "predictions.sqlite"
    config = ServerConfig(
        model_name=MODEL,
        log=str(log),
        log_limits=LogLimits(keep_below=0.99, keep_share=1.0),  # keep every input
        monitor_window=60,
        monitor_interval_s=0.5,
        token="s3cret",
    )
    predictor = Predictor(parts_bundle, engine="onnxruntime")
    with TestClient(
        create_app(predictor, config), headers={"Authorization": "Bearer s3cret"}
    ) as client:
        deadline = time.monotonic() + 20
        while client.get("/v2/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.05)
        yield client, log


def post_images(client: TestClient, images: list[bytes]) -> list[dict]:
    files = [("file", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)]
    response = client.post("/v1/predict", files=files)
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def rows_on_disk(log: Path) -> int:
    """Predictions on disk in the log (read as another process would, beside the writer)."""
    connection = sqlite3.connect(log)
    try:
        return connection.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
    finally:
        connection.close()


def stream(client: TestClient, count: int, seed: int, bright: float = 0.0) -> list[tuple[str, str]]:
    """``count`` parts through the server, half dents; (prediction id, true label) each."""
    rng = np.random.default_rng(seed)
    labels = ["dent", "ok"] * (count // 2)
    sent = []
    for start in range(0, count, 8):
        chunk = labels[start : start + 8]
        predictions = post_images(client, [part_image(rng, lab, bright) for lab in chunk])
        sent += [(p["id"], lab) for p, lab in zip(predictions, chunk, strict=True)]
    return sent


def test_the_loop_serve_log_feedback_monitor_export_retrain_compare(
    served: tuple[TestClient, Path], parts_run: Path, parts_bundle: Bundle, tmp_path: Path
) -> None:
    client, log = served
    like = stream(client, 120, seed=7)
    shifted = stream(client, 120, seed=8, bright=70.0)

    # Feedback: labels for some of each stream; unknown ids and labels are refused.
    for row_id, label in like[:20] + shifted[:20]:
        response = client.post("/v1/feedback", json={"id": row_id, "label": label})
        assert response.status_code == 200, response.text
    assert client.post("/v1/feedback", json={"id": "nope", "label": "ok"}).status_code == 404
    bad_label = client.post("/v1/feedback", json={"id": like[0][0], "label": "scratch"})
    assert bad_label.status_code == 400 and "scratch" in bad_label.json()["error"]
    assert client.post("/v1/feedback", json={"label": "ok"}).status_code == 400

    # v2 answers carry their ids too.
    pixels = Predictor(parts_bundle, engine="onnxruntime").encoder.encode(
        [part_image(np.random.default_rng(3), "ok")]
    )["input"]
    v2 = client.post(
        f"/v2/models/{MODEL}/infer",
        json={"inputs": [{"name": "input", "datatype": "FP32", "shape": list(pixels.shape),
                          "data": pixels.reshape(-1).tolist()}]},
    )  # fmt: skip
    assert v2.status_code == 200 and len(v2.json()["parameters"]["prediction_ids"]) == 1

    # The server's own monitor: gauges and the status page (it runs every 0.5 s here).
    deadline = time.monotonic() + 20
    while "edgeft_estimated_accuracy{" not in client.get("/metrics").text:
        assert time.monotonic() < deadline, "the live monitor never published"
        time.sleep(0.2)
    page = client.get("/")
    assert page.status_code == 200 and MODEL in page.text and "<img" in page.text
    assert TestClient(client.app).get("/").status_code == 401  # behind the token

    # The log's writer thread batches what it is handed: wait (bounded) for all 241 records.
    deadline = time.monotonic() + 20
    while rows_on_disk(log) < 241:
        assert time.monotonic() < deadline, "the prediction log never caught up"
        time.sleep(0.05)
    # The monitor, windows of 60: the like stream's two windows pass, the shifted ones flag.
    report = monitor_log(log, [parts_bundle], "60")
    (version,) = report.versions
    windows = version.windows
    assert [w.items for w in windows[:4]] == [60, 60, 60, 60]
    assert not windows[0].drifted and not windows[1].drifted, [
        w.to_dict()["figures"] for w in windows[:2]
    ]
    assert "input.brightness" in windows[2].drifted and "input.brightness" in windows[3].drifted
    assert windows[0].labelled == 20 and windows[0].realized is not None
    assert windows[-1].items == 1 and windows[-1].drifted == []  # too small to judge
    assert all(f.status == "too-small" for f in windows[-1].figures)
    estimate = windows[0].estimate
    assert estimate is not None and estimate.low <= estimate.value <= estimate.high

    # The command line: exit code 1 on drift, JSON and the HTML report.
    html = tmp_path / "report.html"
    result = CliRunner().invoke(
        cli,
        ["monitor", str(log), "--bundle", str(parts_bundle.root), "--window", "60",
         "--json", "--html", str(html)],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["drifted"] is True
    assert "<svg" in html.read_text() and "input.brightness" in html.read_text()
    like_only = CliRunner().invoke(
        cli, ["monitor", str(log), "--bundle", str(parts_bundle.root), "--window", "1d"]
    )
    assert like_only.exit_code == 1  # one window of everything: the shifted half shows

    # Export for labelling: the most uncertain unlabelled inputs, the labelled ones by class.
    out = tmp_path / "to-label"
    exported = export_for_labelling(log, out, 10, "margin")
    assert exported.to_label == 10 and exported.labelled == 40
    assert len(list(out.glob("*.png"))) == 10
    assert len(list((out / "dent").glob("*.png"))) == 20
    assert len((out / TO_LABEL).read_text().splitlines()) == 11
    logged = read_log(log)[0]
    chosen = {p.stem for p in out.glob("*.png")}
    margins = {
        i: np.sort(p)[-1] - np.sort(p)[-2]
        for i, p in zip(logged.ids, logged.probabilities, strict=True)
    }
    unlabelled = sorted((m, i) for i, m in margins.items() if i not in logged.feedback)
    assert chosen == {i for _, i in unlabelled[:10]}

    spread = export_for_labelling(log, tmp_path / "diverse", 5, "diverse")
    assert spread.to_label == 5 and len(list((tmp_path / "diverse").glob("*.png"))) == 5

    # The operator labels them, retrains from the run, compares, pushes the candidate.
    truth = dict(like + shifted)
    for image in out.glob("*.png"):
        image.rename(out / truth[image.stem] / image.name)
    runner, run, candidate = CliRunner(), tmp_path / "run-2", tmp_path / "bundle-2"
    steps = [
        ["finetune", "--init-from", str(parts_run), "--data", str(out), "--out", str(run)],
        ["export", str(run), "--out", str(candidate)],
    ]
    for step in steps:
        result = runner.invoke(cli, step)
        assert result.exit_code == 0, result.output
    repo = tmp_path / "repo"
    result = runner.invoke(
        cli,
        ["compare", str(candidate), str(parts_bundle.root), "--data", str(out), "--json",
         "--push", str(repo), "--name", MODEL],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    comparison = json.loads(result.stdout)
    assert [e["name"] for e in comparison["environments"]] == ["test", "to-label"]
    assert comparison["environments"][1]["items"] == 50
    from edgeft.repository import ModelRepository

    assert ModelRepository(repo).resolve(MODEL, "candidate").version == 1


def test_versions_are_analysed_apart_and_unknown_bundles_are_named(
    parts_bundle: Bundle, zoo_bundle: Bundle, tmp_path: Path
) -> None:
    log = tmp_path / "log.sqlite"
    writer = PredictionLog(log)
    for bundle, version in ((parts_bundle, "1"), (zoo_bundle, "2")):
        predictor = Predictor(bundle, engine="onnxruntime")
        writer.register(ModelIdentity(MODEL, version, predictor.labels, bundle.fingerprint))
        images = [part_image(np.random.default_rng(i), "ok") for i in range(40)]
        inputs = predictor.encoder.encode(images)
        writer.record(
            MODEL, version, predictor.outputs(inputs), predictor.encoder.statistics(inputs, images)
        )
    writer.close()
    report = monitor_log(log, [parts_bundle], "500")
    by_version = {v.version: v for v in report.versions}
    assert by_version["1"].windows[0].items == 40
    assert by_version["2"].skipped and not by_version["2"].windows


def test_the_log_rotates_and_a_full_disk_stops_keeping_inputs(
    tmp_path: Path, parts_bundle: Bundle
) -> None:

    log = tmp_path / "log.sqlite"
    writer = PredictionLog(log, LogLimits(max_rows=100, keep_below=1.1, max_input_bytes=30_000))
    predictor = Predictor(parts_bundle, engine="onnxruntime")
    writer.register(ModelIdentity(MODEL, "1", predictor.labels, parts_bundle.fingerprint))
    images = [part_image(np.random.default_rng(i), "ok") for i in range(16)]
    inputs = predictor.encoder.encode(images)
    outputs, statistics = predictor.outputs(inputs), predictor.encoder.statistics(inputs, images)
    for _ in range(20):
        writer.record(MODEL, "1", outputs, statistics, images)
        writer.flush()
    writer.close()
    rows = sqlite3.connect(log).execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
    assert 80 <= rows <= 100, rows
    kept = list((tmp_path / "log.sqlite.inputs").glob("*"))
    assert kept and sum(f.stat().st_size for f in kept) <= 30_000
    notes = sqlite3.connect(log).execute("SELECT note FROM notes").fetchall()
    assert notes and "cap" in notes[0][0]

    # A disk that refuses the inputs' files (here: a file where their folder should be).
    broken = tmp_path / "broken.sqlite"
    (tmp_path / "broken.sqlite.inputs").write_text("in the way")
    writer = PredictionLog(broken, LogLimits(keep_below=1.1))
    writer.register(ModelIdentity(MODEL, "1", predictor.labels, parts_bundle.fingerprint))
    ids = writer.record(MODEL, "1", outputs, statistics, images)
    writer.close()
    assert not writer.counters.keeping_inputs and writer.counters.written == len(ids)
    (note,) = sqlite3.connect(broken).execute("SELECT note FROM notes").fetchall()
    assert "no more inputs are kept" in note[0]


def test_windows_parse_counts_and_spans() -> None:
    assert Window.parse("500") == Window(items=500)
    assert Window.parse("1h") == Window(seconds=3600)
    times = np.array([0.0, 10, 3599, 3600, 7300])
    assert [list(w) for w in Window.parse("1h").split(times)] == [[0, 1, 2], [3], [4]]
    for bad in ("0", "-5", "1w", "", "h"):
        with pytest.raises(Exception, match="window"):
            Window.parse(bad)


def test_a_text_bundle_is_profiled_logged_and_exported_as_tables(
    text_bundle: Bundle, tmp_path: Path
) -> None:
    profile = ReferenceStatistics.of(text_bundle)
    assert set(profile.statistics) == {"characters", "tokens", "unknown_rate"}
    predictor = Predictor(text_bundle, engine="onnxruntime")
    texts = ["the north press keeps jamming", "please refund the late fee \U0001f99c"]
    inputs = predictor.encoder.encode(texts)
    statistics = predictor.encoder.statistics(inputs, texts)
    assert statistics["characters"].tolist() == [len(t) for t in texts]
    assert statistics["unknown_rate"][0] == 0 < statistics["unknown_rate"][1]
    log = tmp_path / "texts.sqlite"
    writer = PredictionLog(log, LogLimits(keep_below=1.1))
    writer.register(ModelIdentity("tickets", "1", predictor.labels, text_bundle.fingerprint))
    writer.record("tickets", "1", predictor.outputs(inputs), statistics, texts)
    writer.close()
    (window,) = monitor_log(log, [text_bundle]).versions[0].windows
    assert window.items == 2 and {f.status for f in window.figures} == {"too-small"}
    exported = export_for_labelling(log, tmp_path / "out", 5)
    assert exported.to_label == 2
    listed = (tmp_path / "out" / TO_LABEL).read_text(encoding="utf-8")
    assert all(text in listed for text in texts)


def test_diverse_selection_covers_every_cluster_of_the_sketch() -> None:
    rng = np.random.default_rng(0)
    big = rng.normal(0, 0.1, size=(200, 2))
    small = rng.normal(5, 0.1, size=(5, 2))
    points = np.vstack([big, small])
    candidates = [(1.0 if i == 0 else 0.0,) for i in range(len(points))]
    picks = [i for i, _ in k_center(points, np.empty((0, 2)), 2, candidates)]
    assert picks[0] == 0 and picks[1] >= 200  # the far cluster, not a second doubtful one
    labelled_far = k_center(points, small[:1], 1, candidates)
    assert labelled_far[0][0] < 200  # the far cluster is covered by a label already

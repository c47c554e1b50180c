"""int8 proven on the box that runs it: one int8 model per engine and scheme, picked by host,
an acceptance set in the bundle, and ``edgeft validate`` holding each int8 model to the budget.

Hosts other than this one are Host values (their flags decide the kernels); everything else is
real: real quantizers, real engines, a real server process.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from edgeft.bench.server_process import ServerProcess
from edgeft.bundle import (
    Bundle,
    ImagePreprocessing,
    copy_bundle_files,
    stage_bundle,
    write_manifest,
)
from edgeft.bundle.acceptance import load_acceptance_set, outputs_file
from edgeft.cli import app
from edgeft.data import load_dataset
from edgeft.errors import BundleError, EdgeftError
from edgeft.export import ExportSource, export_bundle
from edgeft.quantize import QuantizeConfig, quantize_bundle
from edgeft.quantize.backends.onnxruntime_backend import OnnxRuntimeQuantizer
from edgeft.runtime import Predictor
from edgeft.runtime.preprocess import ImagePreprocessor
from edgeft.runtime.scoring import encode_items
from edgeft.runtime.validation import validate_bundle, validation_record_path
from edgeft.targets import Host, QuantizationScheme, this_host
from tests.test_quantize import _fragile_network, _warm_cold_images

# The tiny test models run slower in int8 than in fp32 (fixed costs per operator outweigh the
# arithmetic), so these tests ship int8 anyway; test_budget_search.py tests the speed rule.

QUIET = Console(quiet=True)
AVX2 = Host("AVX2 box", "x86_64", frozenset({"avx2", "fma"}), 2)
VNNI = Host("VNNI box", "x86_64", frozenset({"avx2", "fma", "avx512f", "avx512_vnni"}), 2)
AMX = Host("AMX box", "x86_64", frozenset({"avx2", "fma", "avx512f", "avx512_vnni", "amx_int8"}), 2)
ARM = Host("Cortex-A76", "aarch64", frozenset({"asimd", "asimddp"}), 4)
runner = CliRunner()


@pytest.fixture(scope="module")
def fp32_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """The fragile network (exact in float, broken by int8 weights in its first layer) with a
    recorded dataset, so export stores an acceptance set."""
    return _fragile_bundle(tmp_path_factory.mktemp("on-target"), per_class=30)


def _fragile_bundle(root: Path, per_class: int, signal: float = 0.01) -> Bundle:
    """``_fragile_network`` exported with warm/cold images as its recorded dataset."""
    dataset = load_dataset(_warm_cold_images(root / "data", per_class))
    source = ExportSource(
        model=_fragile_network(signal),
        task="image-classification",
        labels=dataset.classes,
        preprocessing=ImagePreprocessing(crop=(16, 16), resize=16),
        provenance={"dataset": dataset.describe()},
    )
    return export_bundle(source, root / "fp32")


@pytest.fixture(scope="module")
def two_box_bundle(fp32_bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """Built as on an AVX2 workstation whatever this host is, so that both ways of judging the
    budget run everywhere: the 7-bit models on the kernels, timed against fp32, and the VNNI
    models in exact int8 arithmetic, untimed."""
    config = QuantizeConfig(
        allow_slower_int8=True, calibration=20, targets=("x86-avx2-no-vnni", "x86-avx512-vnni")
    )
    out = tmp_path_factory.mktemp("two-box") / "int8"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("edgeft.targets.int8_scheme.this_host", lambda: AVX2)
        return quantize_bundle(fp32_bundle.root, out, config, console=QUIET)


def test_export_stores_a_stratified_acceptance_set_with_each_models_outputs(
    fp32_bundle: Bundle,
) -> None:
    manifest = fp32_bundle.manifest
    accepted = load_acceptance_set(fp32_bundle.root, manifest)
    assert accepted is not None and accepted.source["split"] == "val"
    assert sorted(set(accepted.labels)) == ["cold", "warm"]
    for entry in manifest.models:
        assert entry.reference_outputs == outputs_file(entry.path)
        assert entry.reference_outputs in manifest.files  # hashed like every other file
    # A stored image preprocesses to exactly the tensor its original gave.
    original = load_dataset(manifest.provenance["dataset"]["source"]).splits["val"]
    preprocess = ImagePreprocessor(manifest.preprocessing)  # type: ignore[arg-type]
    stored = accepted.inputs(fp32_bundle.root)
    assert len(stored) == len(original)  # a small split: the whole of it, in order
    encoded = encode_items(fp32_bundle, stored).batches[0]["input"]
    originals = np.stack([preprocess(e.item) for e in original])
    np.testing.assert_array_equal(encoded, originals)


def test_one_bundle_holds_an_int8_model_per_engine_and_scheme(two_box_bundle: Bundle) -> None:
    int8 = {(m.engine, m.int8_scheme.key): m for m in two_box_bundle.manifest.models if m.scheme}
    assert set(int8) == {(e, k) for e in ("onnxruntime", "openvino") for k in ("u8s7", "u8s8")}
    for (_, key), entry in int8.items():
        assert entry.targets == ["x86-avx2-no-vnni" if key == "u8s7" else "x86-avx512-vnni"]
        assert entry.validated_on is not None and entry.validated_on["cpu"]
        assert entry.details["val_drop_points"] <= 1.0
        assert {"drop", "low", "high"} <= set(entry.details["val_drop_interval"])
        typed = entry.int8  # the same record, typed; written back, the same JSON
        assert typed is not None and json.dumps(typed.to_dict()) == json.dumps(entry.details)
        # damage measured without labels, on training items the calibration did not use
        unlabelled = entry.details["unlabelled"]
        assert unlabelled["items"] > 0 and 0.0 <= unlabelled["agreement"] <= 1.0
        # timed against fp32 on the kernels, unless the build host (an AVX2 one) would saturate
        # on the scheme: then judged in exact arithmetic and not timed
        speed = entry.details["speed"]
        assert entry.details["exact_arithmetic"] == (key == "u8s8")
        if key == "u8s8":
            assert speed is None
        else:
            assert speed["fp32_p50_ms"] > 0 and speed["int8_p50_ms"] > 0 and speed["speedup"] > 0
        assert entry.reference_outputs and not entry.candidate
        assert Path(two_box_bundle.path_of(entry)).name.startswith("model.int8-" + key)


def test_all_cpu_targets_share_files_where_an_engine_sees_one_scheme(
    fp32_bundle: Bundle, tmp_path: Path
) -> None:
    plans = QuantizeConfig(targets=("all-cpu",)).plans()
    by_engine: dict[str, dict[str, tuple[str, ...]]] = {}
    for plan in plans:
        by_engine.setdefault(plan.engine, {})[plan.scheme.key] = plan.targets
    assert set(by_engine["onnxruntime"]) == {"u8s7", "u8s8", "s8s8"}
    # NNCF's OpenVINO int8 differs only where products saturate: ARM, VNNI and AMX share a file.
    assert set(by_engine["openvino"]) == {"u8s7", "u8s8"}
    assert {"arm64-cortex-a76", "x86-avx512-vnni", "x86-amx"} <= set(by_engine["openvino"]["u8s8"])
    with pytest.raises(EdgeftError, match=r"unknown target 'x86-avx3'.*x86-avx2-no-vnni.*all-cpu"):
        QuantizeConfig(targets=("x86-avx3",)).plans()


@pytest.mark.parametrize(
    ("host", "expected"), [(AVX2, "u8s7"), (VNNI, "u8s8"), (AMX, "u8s8"), (ARM, "u8s8")]
)
def test_the_runtime_picks_the_int8_model_made_for_this_host(
    two_box_bundle: Bundle, host: Host, expected: str
) -> None:
    predictor = Predictor(two_box_bundle, engine="onnxruntime", host=host)
    assert predictor.model.precision == "int8"
    assert predictor.model.int8_scheme.key == expected  # type: ignore[union-attr]


def _only_vnni(bundle: Bundle, out: Path) -> Bundle:
    """A copy of ``bundle`` keeping fp32 and the VNNI-scheme int8 models only."""
    kept = [m for m in bundle.manifest.models if m.scheme is None or not m.scheme["reduce_range"]]
    with stage_bundle(out) as staging:
        copy_bundle_files(bundle, staging, kept)
        write_manifest(staging, replace(bundle.manifest, models=kept))
    return Bundle.load(out)


def test_auto_runs_fp32_and_says_why_when_no_int8_model_fits_this_host(
    two_box_bundle: Bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vnni_only = _only_vnni(two_box_bundle, tmp_path / "vnni-only")
    predictor = Predictor(vnni_only, host=AVX2)
    assert predictor.model.precision == "fp32"
    assert any("overflow the 16-bit sums" in n for n in predictor.choice.notes)
    with pytest.raises(EdgeftError, match=r"no int8 model .* fits this host.*--allow-mismatch"):
        Predictor(vnni_only, precision="int8", host=AVX2)
    forced = Predictor(vnni_only, precision="int8", allow_mismatch=True, host=AVX2)
    assert forced.model.int8_scheme == QuantizationScheme()
    # The command line says the same on an AVX2 box.
    monkeypatch.setattr("edgeft.runtime.model_choice.this_host", lambda: AVX2)
    image = vnni_only.root / load_acceptance_set(vnni_only.root, vnni_only.manifest).items[0]  # type: ignore[union-attr]
    result = runner.invoke(app, ["predict", str(vnni_only.root), str(image), "--json"])
    assert result.exit_code == 0, result.output
    assert "not run" in result.stderr and "running fp32 instead" in result.stderr
    assert "running onnxruntime/fp32" in result.stderr
    # validate skips what this host cannot run, and says why
    report = validate_bundle(vnni_only, host=AVX2)
    assert {s["model"] for s in report.skipped} == {"onnxruntime/int8 u8s8", "openvino/int8 u8s8"}


def test_validate_scores_every_model_with_intervals_and_records_beside_the_bundle(
    two_box_bundle: Bundle,
) -> None:
    result = runner.invoke(app, ["validate", str(two_box_bundle.root), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] and report["data"] == "acceptance set"
    models = {m["model"]: m for m in report["models"]}
    skipped = {s["model"] for s in report["skipped"]}
    assert len(models) + len(skipped) == 6
    # the 8-bit-weight scheme would saturate on a host without VNNI: not validated there
    saturating = {"onnxruntime/int8 u8s8", "openvino/int8 u8s8"}
    assert skipped == (set() if this_host().has_vnni else saturating)
    for name, row in models.items():
        low, high = row["scores"]["accuracy_interval"]
        assert low <= row["scores"]["accuracy"] <= high
        assert set(row["scores"]["recall"]) == {"cold", "warm"}
        assert row["recorded"]["agreement_with_recorded"] == 1.0  # same host as the build
        if "int8" in name:
            assert row["agreement_with_fp32"] is not None and row["budget_points"] == 1.0
            assert row["drop"]["low"] <= row["drop"]["drop"] <= row["drop"]["high"]
    record = json.loads(validation_record_path(two_box_bundle.root).read_text())
    assert record["records"][-1]["manifest_sha256"] == report["manifest_sha256"]
    assert not (two_box_bundle.root / "validation.json").exists()  # the bundle stays as hashed
    Bundle.load(two_box_bundle.root)


def test_validate_refuses_unknown_labels_and_a_tampered_acceptance_set(
    two_box_bundle: Bundle, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    _warm_cold_images(other, 2)  # too few to split: validate holds nothing out
    result = runner.invoke(
        app, ["validate", str(two_box_bundle.root), "--data", str(other), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["items"] == 4 and report["data"] == str(other)
    assert all(m["recorded"] is None for m in report["models"])  # no build-time outputs for it
    (other / "warm").rename(other / "hot")
    result = runner.invoke(app, ["validate", str(two_box_bundle.root), "--data", str(other)])
    assert result.exit_code != 0 and "hot" in str(result.exception)
    copy = tmp_path / "tampered"
    shutil.copytree(two_box_bundle.root, copy)
    image = copy / load_acceptance_set(copy, two_box_bundle.manifest).items[0]  # type: ignore[union-attr]
    image.write_bytes(image.read_bytes()[:-10])
    with pytest.raises(BundleError, match="does not match its sha256"):
        Bundle.load(copy)


def _broken_int8_bundle(fp32_bundle: Bundle, out: Path, work: Path) -> Bundle:
    """The fragile network's 7-bit int8 model with nothing kept in float (it loses half the
    items), recorded as if the build host had measured it equal to fp32."""
    manifest = fp32_bundle.manifest
    fp32 = manifest.model("onnxruntime", "fp32")
    scheme = QuantizationScheme(reduce_range=True)  # run faithfully by every x86 host's kernels
    accepted = load_acceptance_set(fp32_bundle.root, manifest)
    assert accepted is not None
    calibration = encode_items(fp32_bundle, accepted.inputs(fp32_bundle.root))
    work.mkdir()
    quantizer = OnnxRuntimeQuantizer(fp32_bundle.path_of(fp32), calibration, scheme, work)
    with stage_bundle(out) as staging:
        copy_bundle_files(fp32_bundle, staging, [fp32])
        quantizer.quantize("minmax", staging / quantizer.int8_file)
        outputs = outputs_file(quantizer.int8_file)
        shutil.copy2(staging / str(fp32.reference_outputs), staging / outputs)
        broken = replace(
            fp32,
            path=quantizer.int8_file,
            precision="int8",
            scheme=scheme.to_dict(),
            reference_outputs=outputs,
            details={"max_accuracy_drop": 1.0, "budget_metric": "accuracy"},
        )
        write_manifest(staging, replace(manifest, models=[fp32, broken]))
    return Bundle.load(out)


def test_serve_validate_never_gets_ready_on_an_int8_model_over_budget_here(
    fp32_bundle: Bundle, tmp_path: Path
) -> None:
    broken = _broken_int8_bundle(fp32_bundle, tmp_path / "broken", tmp_path / "work")
    report = validate_bundle(broken)
    assert not report.passed
    assert "over the 1.00-point budget" in report.failures()[0]
    assert runner.invoke(app, ["validate", str(broken.root)]).exit_code == 1
    options = ["--validate", "--engine", "onnxruntime", "--precision", "int8"]
    with ServerProcess(broken.root, options, wait_for="/v2/health/live") as server:
        status, body = server.request("GET", "/v2/health/ready")
        assert status == 503 and b"over the 1.00-point budget" in body
        status, _ = server.request("POST", "/v1/predict", body=b"x")
        assert status == 503
    # the same bundle's fp32 model validates and serves
    with ServerProcess(broken.root, ["--validate", "--precision", "fp32"]) as server:
        assert server.request("GET", "/v2/health/ready")[0] == 200


def test_a_schema_1_bundle_still_loads_and_its_unchecked_qat_model_is_a_candidate(
    fp32_bundle: Bundle, tmp_path: Path
) -> None:
    copy = tmp_path / "schema1"
    shutil.copytree(fp32_bundle.root, copy)
    manifest = json.loads((copy / "edgeft.json").read_text())
    manifest["schema_version"] = 1
    for name in ("acceptance",):
        manifest.pop(name)
    qat = dict(manifest["models"][0], precision="int8", details={"source": "qat"})
    manifest["models"] = [
        {k: v for k, v in m.items() if k in ("path", "engine", "precision", "metrics", "details")}
        for m in [*manifest["models"], qat]
    ]
    (copy / "edgeft.json").write_text(json.dumps(manifest))
    loaded = Bundle.load(copy)
    assert loaded.manifest.models[-1].candidate
    assert Predictor(loaded).model.precision == "fp32"  # a candidate never runs


def test_budget_metric_names_a_class_of_the_bundle(fp32_bundle: Bundle, tmp_path: Path) -> None:
    config = QuantizeConfig(
        allow_slower_int8=True, calibration=20, budget_metric="recall:defective"
    )
    with pytest.raises(EdgeftError, match="no class 'defective'"):
        quantize_bundle(fp32_bundle.root, tmp_path / "x", config, console=QUIET)
    config = replace(config, budget_metric="recall:warm", engines=("onnxruntime",))
    out = quantize_bundle(fp32_bundle.root, tmp_path / "recall", config, console=QUIET)
    int8 = next(m for m in out.manifest.models if m.precision == "int8")
    assert int8.details["budget_metric"] == "recall:warm"


def test_validate_runs_on_a_runtime_only_install(two_box_bundle: Bundle, edge_box: Path) -> None:
    import subprocess

    result = subprocess.run(
        [str(edge_box / "edgeft"), "validate", str(two_box_bundle.root), "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] and {m["model"] for m in report["models"]} >= {
        "onnxruntime/fp32",
        f"onnxruntime/int8 {QuantizationScheme.for_host().key}",
    }
    # OpenVINO is not in the box's install: its models are skipped with the reason (and, on a
    # CPU without VNNI, the 8-bit-weight models with theirs)
    reasons = {s["reason"] for s in report["skipped"]}
    assert "openvino is not installed here" in reasons
    assert this_host().has_vnni or any("no VNNI" in r for r in reasons)
    assert len(reasons) == (1 if this_host().has_vnni else 2), reasons


@pytest.mark.parametrize("host", [AVX2, VNNI])
def test_validate_on_a_box_without_openvino_skips_what_it_cannot_run(
    two_box_bundle: Bundle, host: Host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both boxes' answers on any host: a missing engine's models and, without VNNI, the
    8-bit-weight models are skipped, each with its reason; the rest are scored."""
    copy = tmp_path / "bundle"  # validate records its result beside the bundle
    shutil.copytree(two_box_bundle.root, copy)
    monkeypatch.setattr(
        "edgeft.runtime.validation_report.engine_installed", lambda e: e != "openvino"
    )
    report = validate_bundle(Bundle.load(copy), host=host)
    skipped = {s["model"]: s["reason"] for s in report.skipped}
    openvino = {"openvino/fp32", "openvino/int8 u8s7", "openvino/int8 u8s8"}
    assert {skipped[m] for m in openvino} == {"openvino is not installed here"}
    saturating = {"onnxruntime/int8 u8s8"} if host is AVX2 else set()
    assert set(skipped) == openvino | saturating
    assert all("no VNNI" in skipped[m] for m in saturating)
    scored = {m.model for m in report.models}
    assert scored == {"onnxruntime/fp32", "onnxruntime/int8 u8s7"} | (
        set() if host is AVX2 else {"onnxruntime/int8 u8s8"}
    )
    assert report.passed, report.failures()


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_exact_int8_arithmetic_matches_the_kernels_where_they_do_not_saturate(
    two_box_bundle: Bundle, engine: str
) -> None:
    """How a workstation judges a scheme its own kernels would saturate on: QDQ evaluated in
    float. On the 7-bit scheme, which no x86 kernel saturates on, both ways agree."""
    from edgeft.runtime.scoring import model_logits

    entry = next(
        m
        for m in two_box_bundle.manifest.models
        if m.engine == engine and m.scheme and m.scheme["reduce_range"]
    )
    accepted = load_acceptance_set(two_box_bundle.root, two_box_bundle.manifest)
    data = encode_items(two_box_bundle, accepted.inputs(two_box_bundle.root))  # type: ignore[union-attr]
    path = two_box_bundle.path_of(entry)
    kernels = model_logits(engine, path, "int8", data)
    exact = model_logits(engine, path, "int8", data, exact=True)
    np.testing.assert_array_equal(kernels.argmax(1), exact.argmax(1))
    # a few output quantization steps apart at most (rounding in fused kernels vs in float)
    assert np.abs(kernels - exact).max() < 0.1 * np.abs(kernels).max()


def test_a_scheme_that_fits_is_written_when_another_does_not(tmp_path: Path) -> None:
    """8-bit weights keep this network's signal and 7-bit weights lose it: the VNNI model is
    written, the AVX2 one is not, and the manifest says why and how to accept its best."""
    fp32 = _fragile_bundle(tmp_path, per_class=30, signal=0.5)
    config = QuantizeConfig(
        allow_slower_int8=True,
        engines=("onnxruntime",),
        calibration=20,
        method="minmax",
        max_float_layers=0,
        targets=("x86-avx2-no-vnni", "x86-avx512-vnni"),
    )
    out = quantize_bundle(fp32.root, tmp_path / "int8", config, console=QUIET)
    int8 = [m for m in out.manifest.models if m.precision == "int8"]
    assert [m.int8_scheme.key for m in int8] == ["u8s8"]  # type: ignore[union-attr]
    (failure,) = out.manifest.provenance["int8_failures"]
    assert failure["scheme"] == "u8s7" and failure["targets"] == ["x86-avx2-no-vnni"]
    assert failure["best"]["drop"] > 1.0 and "--target x86-avx2-no-vnni" in failure["command"]
    result = runner.invoke(app, ["validate", str(out.root)])
    assert result.exit_code == 0, result.output


def test_a_large_enough_validation_split_keeps_a_confirmation_slice(tmp_path: Path) -> None:
    """With 300 validation items a third (100) resolves a 1-point budget on its own: the search
    never sees it, and the accepted model is checked on it last."""
    fp32 = _fragile_bundle(tmp_path, per_class=1000)
    validation_items = fp32.manifest.provenance["dataset"]["sizes"]["val"]
    assert validation_items >= 300
    config = QuantizeConfig(
        allow_slower_int8=True, engines=("onnxruntime",), calibration=50, method="minmax"
    )
    out = quantize_bundle(fp32.root, tmp_path / "int8", config, console=QUIET)
    int8 = next(m for m in out.manifest.models if m.precision == "int8")
    confirmation = int8.details["confirmation"]
    assert confirmation["items"] == validation_items - int8.metrics["val"]["examples"]
    assert confirmation["items"] >= 100 and confirmation["drop_points"] <= 1.0
    assert confirmation["drop_interval"]["low"] <= confirmation["drop_points"]
    typed = int8.int8
    assert typed is not None and typed.confirmation is not None
    assert typed.confirmation.to_dict() == confirmation


def test_a_small_validation_split_has_no_confirmation_slice(two_box_bundle: Bundle) -> None:
    for entry in two_box_bundle.manifest.models:
        if entry.precision == "int8":
            assert entry.details["confirmation"] is None


def test_the_arm_scheme_quantizes_activations_signed_and_symmetric(
    fp32_bundle: Bundle, tmp_path: Path
) -> None:
    """s8s8, what an ARM box runs, made on this x86 workstation: every activation's zero point
    is a signed 0, and the runtime picks the model on the ARM box."""
    import onnx
    from onnx import numpy_helper

    config = QuantizeConfig(
        allow_slower_int8=True,
        engines=("onnxruntime",),
        calibration=20,
        targets=("arm64-cortex-a76",),
    )
    out = quantize_bundle(fp32_bundle.root, tmp_path / "arm", config, console=QUIET)
    entry = out.manifest.model("onnxruntime", "int8")
    assert entry.int8_scheme.key == "s8s8" and entry.targets == ["arm64-cortex-a76"]  # type: ignore[union-attr]
    graph = onnx.load(str(out.path_of(entry))).graph
    initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    zero_points = [initializers[n.input[2]] for n in graph.node if n.op_type == "QuantizeLinear"]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)
    assert Predictor(out, engine="onnxruntime", host=ARM).model.int8_scheme.key == "s8s8"  # type: ignore[union-attr]

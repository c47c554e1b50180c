"""Target profiles, host matching and refusal, latency statistics, the results database, and
`edgeft bench` / `report` end to end on a real exported model."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from edgeft.bench import BenchmarkRun, ModelBenchmark, ResultsStore, summarise
from edgeft.bench.probe import _run_probe
from edgeft.bench.report import write_report
from edgeft.bench.run import DEFAULT_PRECISION, _candidates
from edgeft.bench.store import SCHEMA_VERSION, to_csv
from edgeft.bundle import Bundle
from edgeft.errors import EdgeftError
from edgeft.targets import Host, load_targets, parse_target, resolve_target
from tests.test_cli import run

REPO_TARGETS = Path(__file__).resolve().parents[1] / "targets"
REQUIRED = {
    "x86-avx2-no-vnni", "x86-avx512-vnni", "x86-amx", "arm64-cortex-a76", "intel-igpu", "nvidia-gpu",
    "jetson-orin",
}  # fmt: skip


def _host(machine: str, *flags: str) -> Host:
    return Host(cpu_model="test CPU", machine=machine, flags=frozenset(flags), cores=4)


HOSTS = {
    "haswell": (_host("x86_64", "avx2", "fma"), "x86-avx2-no-vnni"),
    "ice lake": (_host("x86_64", "avx2", "fma", "avx512f", "avx512_vnni"), "x86-avx512-vnni"),
    "sapphire rapids": (
        _host("x86_64", "avx2", "fma", "avx512f", "avx512_vnni", "amx_int8", "amx_bf16"),
        "x86-amx",
    ),
    "raspberry pi 5": (_host("aarch64", "fp", "asimd", "asimddp"), "arm64-cortex-a76"),
}


def test_every_required_target_ships_and_parses() -> None:
    targets = load_targets([REPO_TARGETS])
    assert set(targets) >= REQUIRED
    assert targets["x86-avx2-no-vnni"].quantization["reduce_range"]
    assert targets["arm64-cortex-a76"].quantization["activations"] == "int8"
    assert targets["nvidia-gpu"].engines["onnxruntime"]["providers"][1] == "CUDAExecutionProvider"


@pytest.mark.parametrize("case", list(HOSTS))
def test_each_cpu_host_matches_exactly_its_own_cpu_target(case: str) -> None:
    host, expected = HOSTS[case]
    targets = load_targets([REPO_TARGETS])
    cpu_targets = [t for t in targets.values() if t.requires.cpu_flags]
    assert [t.name for t in cpu_targets if not t.mismatches(host)] == [expected]


def test_a_target_the_host_cannot_run_is_refused_with_the_reason() -> None:
    host, _ = HOSTS["haswell"]
    targets = load_targets([REPO_TARGETS])
    assert targets["x86-amx"].mismatches(HOSTS["ice lake"][0]) == ["CPU lacks amx_int8, amx_bf16"]
    assert any(
        "avx512_vnni" in r for r in targets["x86-avx2-no-vnni"].mismatches(HOSTS["ice lake"][0])
    )
    assert "needs a aarch64/arm64 CPU (this is x86_64)" in targets["arm64-cortex-a76"].mismatches(
        host
    )
    with pytest.raises(EdgeftError, match=r"target x86-amx cannot run on this host: CPU lacks avx"):
        resolve_target("x86-amx", host)
    with pytest.raises(EdgeftError, match="unknown target 'tpu-v9'"):
        resolve_target("tpu-v9", host)
    assert resolve_target(None, host).name == "x86-avx2-no-vnni"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"engines": {"onnxruntime": {}}}, "needs name"),
        ({"name": "t"}, "at least one"),
        ({"name": "t", "engines": {"tensorflow": {}}}, "unknown engine 'tensorflow'"),
        ({"name": "t", "engines": {"openvino": {"turbo": 1}}}, r"unknown \[engines.openvino\] keys: turbo"),
        ({"name": "t", "engines": {"openvino": {}}, "requires": {"gpu": ["x"]}}, r"unknown \[requires\] keys: gpu"),
        ({"name": "t", "engines": {"openvino": {}}, "requires": {"cpu_flags": "avx2"}}, "list of strings"),
    ],
)  # fmt: skip
def test_bad_target_files_name_the_problem(data: dict, message: str) -> None:
    with pytest.raises(EdgeftError, match=message):
        parse_target(data, Path("targets/bad.toml"))


def test_latency_statistics() -> None:
    times = [t / 1000 for t in range(1, 101)]  # 1..100 ms
    stats = summarise(times, batch=4)
    assert stats.calls == 100 and stats.min_ms == pytest.approx(1.0)
    assert stats.p50_ms == pytest.approx(50.5) and stats.p90_ms == pytest.approx(90.1)
    assert stats.p99_ms == pytest.approx(99.01) and stats.mean_ms == pytest.approx(50.5)
    assert stats.std_ms == pytest.approx(np.std(np.arange(1, 101)))
    assert stats.throughput == pytest.approx(4 * 1000 / 50.5)


def _run(target: str, p50_ms: float) -> BenchmarkRun:
    model = ModelBenchmark("openvino", "int8", "", size_mb=2.5, accuracy=0.9, cold_start_ms=400.0)
    samples = [p50_ms * 0.9, p50_ms, p50_ms * 1.2]
    model.latency[1] = summarise([s / 1000 for s in samples], 1)
    model.samples_ms[1] = samples
    host = {"cpu": f"{target} CPU", "cores": 2}
    return BenchmarkRun("2026-11-21T10:00:00+00:00", "b", target, host, [1], 1.0, [model])


def test_results_database_keeps_runs_from_several_boxes(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "bench.sqlite")
    first = store.add(_run("x86-avx2-no-vnni", 3.0))
    second = store.add(_run("arm64-cortex-a76", 9.0))
    assert [r["target"] for r in store.runs()] == ["x86-avx2-no-vnni", "arm64-cortex-a76"]
    rows = ResultsStore(tmp_path / "bench.sqlite").results(samples=True)  # reopened from disk
    assert [(r["run_id"], r["cpu"], r["p50_ms"]) for r in rows] == [
        (first, "x86-avx2-no-vnni CPU", 3.0), (second, "arm64-cortex-a76 CPU", 9.0)
    ]  # fmt: skip
    assert rows[1]["samples_ms"] == pytest.approx([8.1, 9.0, 10.8])
    assert store.results([second])[0]["model"] == "openvino int8"
    assert to_csv(rows).splitlines()[0].startswith("run_id,created,target,cpu")
    with pytest.raises(EdgeftError, match="no runs with ids 99"):
        store.results([99])


def test_a_failed_add_stores_nothing_and_a_corrupt_db_is_named(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "bench.sqlite")
    store.add(_run("x86-avx2-no-vnni", 3.0))
    broken = _run("x86-avx2-no-vnni", 3.0)
    broken.models[0].samples_ms.clear()  # fails after the run row is inserted
    with pytest.raises(KeyError):
        store.add(broken)
    assert len(store.runs()) == 1 and len(store.results()) == 1
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(EdgeftError, match="not a usable results database"):
        ResultsStore(garbage).runs()
    assert sqlite3.connect(store.path).execute("SELECT COUNT(*) FROM runs").fetchone() == (1,)


def test_a_locked_database_is_named_once_its_timeout_passes(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "bench.sqlite", timeout_s=0.1)
    store.add(_run("x86-avx2-no-vnni", 3.0))
    with closing(sqlite3.connect(store.path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")  # another writer: reads pass, writes wait
        with pytest.raises(EdgeftError, match=r"could not use the results database \(database is"):
            store.add(_run("x86-avx2-no-vnni", 3.0))
        assert len(store.runs()) == 1
        other.execute("COMMIT")
        other.execute("BEGIN EXCLUSIVE")  # not even reads pass
        with pytest.raises(EdgeftError, match="database is locked"):
            store.runs()


def _user_version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("PRAGMA user_version").fetchone()[0]


def _set_user_version(path: Path, version: int) -> None:
    with closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {version}")


def test_the_database_carries_its_schema_version(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "bench.sqlite")
    assert store.runs() == [] and _user_version(store.path) == SCHEMA_VERSION
    store.add(_run("x86-avx2-no-vnni", 3.0))
    _set_user_version(store.path, 0)  # as written before versioning: the same tables
    assert [r["p50_ms"] for r in store.results()] == [3.0]
    assert _user_version(store.path) == SCHEMA_VERSION
    _set_user_version(store.path, SCHEMA_VERSION + 1)
    with pytest.raises(EdgeftError, match="written by a newer edgeft"):
        store.add(_run("x86-avx2-no-vnni", 4.0))
    assert _user_version(store.path) == SCHEMA_VERSION + 1
    with closing(sqlite3.connect(store.path)) as db:
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone() == (1,)


_WRITES_PID = "import os, pathlib, sys; pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))"


@pytest.mark.parametrize(
    "hang",
    [
        "import time; time.sleep(60)",
        "import time; print('first-result', flush=True); time.sleep(60)",
    ],
    ids=["before-first-result", "after-first-result"],
)
def test_a_probe_child_that_hangs_is_killed_at_the_timeout(hang: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    started = time.perf_counter()
    with pytest.raises(EdgeftError, match="probe of m did not finish within 1 s"):
        _run_probe(
            [sys.executable, "-c", f"{_WRITES_PID}; {hang}", str(pid_file)], 1.0, "probe of m"
        )
    assert time.perf_counter() - started < 10
    with pytest.raises(ProcessLookupError):  # killed and reaped: not even a zombie is left
        os.kill(int(pid_file.read_text()), 0)


def test_a_probe_reports_the_time_to_its_first_result_and_a_failure_its_stderr() -> None:
    answers = "print('first-result', flush=True); print('{\"peak_rss_mb\": 12.5}')"
    seconds, rest = _run_probe([sys.executable, "-c", answers], 30.0, "probe of m")
    assert 0 < seconds < 30 and json.loads(rest) == {"peak_rss_mb": 12.5}
    fails = "import sys; sys.exit('no such model')"
    with pytest.raises(EdgeftError, match="probe of m failed: no such model"):
        _run_probe([sys.executable, "-c", fails], 30.0, "probe of m")


def test_report_is_one_self_contained_page(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "bench.sqlite")
    store.add(_run("x86-avx2-no-vnni", 3.0))
    store.add(_run("arm64-cortex-a76", 9.0))
    page = write_report(store.results(samples=True), tmp_path / "report.html").read_text()
    assert page.count("<svg") == 3  # latency distribution, accuracy vs latency, size
    assert "Run 2: target arm64-cortex-a76" in page and "<td>9.00</td>" in page
    assert not re.search(r"(src|href)=\"?https?:|<link|<script|url\((?!#)", page)  # nothing fetched
    with pytest.raises(EdgeftError, match="no benchmark results"):
        write_report([], tmp_path / "empty.html")


def test_bench_cli_measures_stores_and_reports(zoo_bundle: Bundle, tmp_path: Path) -> None:
    db, out = tmp_path / "bench.sqlite", tmp_path / "run.json"
    result = run(
        "bench", str(zoo_bundle.root), "--batch", "1,2", "--duration", "0.3", "--out", str(out),
        "--db", str(db),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "p50 ms" in result.stdout and "stored in" in result.stdout
    measured = json.loads(out.read_text())
    assert measured["run_id"] == 1
    assert measured["host"]["cores"] >= 1 and "onnxruntime" in measured["host"]["versions"]
    models = {(m["engine"], m["precision"], m["variant"]): m for m in measured["models"]}
    assert {("onnxruntime", "fp32", ""), ("openvino", "fp32", "")} <= set(models)
    for model in models.values():
        for batch in ("1", "2"):
            stats = model["latency"][batch]
            assert 0 < stats["min_ms"] <= stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"]
        assert model["cold_start_ms"] > model["latency"]["1"]["p50_ms"]  # a process start is slow
        assert model["peak_rss_mb"] > 50 and model["throughput_mode_ips"] > 0
        assert model["size_mb"] == pytest.approx(14.0, rel=0.1)  # MobileNetV2 fp32
    rows = ResultsStore(db).results()
    assert len(rows) == 2 * len(models) and {r["batch"] for r in rows} == {1, 2}
    page = tmp_path / "report.html"
    reported = run("report", "--db", str(db), "--out", str(page))
    assert reported.returncode == 0, reported.stderr
    assert page.read_text().count("<svg") >= 2
    exported = run("results", "--db", str(db), "--csv", str(tmp_path / "rows.csv"))
    assert (
        exported.returncode == 0
        and len((tmp_path / "rows.csv").read_text().splitlines()) == len(rows) + 1
    )
    printed = run("results", "--db", str(db), "--json")
    assert printed.returncode == 0 and len(json.loads(printed.stdout)) == len(rows)
    quick = ("bench", str(zoo_bundle.root), "--duration", "0.1", "--no-cold-start")
    again = run(*quick, "--db", str(db), "--json")  # the run on stdout, notes on stderr
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["run_id"] == 2 and "stored in" in again.stderr


def test_bench_keeps_the_run_in_its_json_file_when_the_database_fails(
    zoo_bundle: Bundle, tmp_path: Path
) -> None:
    db, out = tmp_path / "bench.sqlite", tmp_path / "run.json"
    ResultsStore(db).runs()
    quick = ("bench", str(zoo_bundle.root), "--duration", "0.1", "--no-cold-start")
    with closing(sqlite3.connect(db, isolation_level=None)) as other:
        other.execute("BEGIN EXCLUSIVE")  # held past bench's 5 s wait for the lock
        kept = run(*quick, "--db", str(db), "--out", str(out))
    assert kept.returncode == 0, kept.stderr
    warning = " ".join(kept.stderr.split())
    assert f"{db}: could not use the results database (database is locked)" in warning
    assert f"{out} holds it" in warning and "stored in" not in kept.stdout
    measured = json.loads(out.read_text())
    assert measured["run_id"] is None and measured["models"]
    assert ResultsStore(db).runs() == []
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not SQLite" * 100)
    lost = run(*quick, "--db", str(garbage))
    assert lost.returncode == 2
    assert "the run was not saved" in lost.stderr and "not a usable results database" in lost.stderr


def test_bench_refuses_a_target_this_host_cannot_run(zoo_bundle: Bundle, tmp_path: Path) -> None:
    foreign = next(t for t in load_targets().values() if t.mismatches())
    result = run(
        "bench", str(zoo_bundle.root), "--target", foreign.name, "--db", str(tmp_path / "d")
    )
    assert (
        result.returncode == 2 and f"target {foreign.name} cannot run on this host" in result.stderr
    )
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("name", ["haswell", "ice lake", "sapphire rapids"])
def test_openvino_fp32_is_also_benched_at_the_engines_default_precision_on_bf16_cpus(
    zoo_bundle: Bundle, name: str
) -> None:
    """OpenVINO runs an fp32 model in bf16 where the CPU has bf16 (AMX): bench times that
    default beside true fp32 there, and only there, whichever host runs the test."""
    host, target = HOSTS[name]
    skipped: list[dict[str, str]] = []
    variants = _candidates(zoo_bundle, load_targets()[target], host, skipped)
    defaults = [(e.engine, e.precision) for e, v in variants if v == DEFAULT_PRECISION]
    assert defaults == ([("openvino", "fp32")] if name == "sapphire rapids" else [])
    assert ("openvino", "fp32") in {(e.engine, e.precision) for e, v in variants if not v}


def test_openvino_fp32_is_held_to_f32_on_every_cpu(zoo_bundle: Bundle) -> None:
    """A fair fp32 baseline: without the hint a bf16 CPU would run the model in bf16, so the
    hint is set whatever this host is (and left to the engine for its default precision)."""
    import openvino as ov

    from edgeft.runtime.engines import open_session

    path = zoo_bundle.path_of(zoo_bundle.manifest.model("openvino", "fp32"))
    fp32 = open_session("openvino", path, precision="fp32")
    assert fp32._config["INFERENCE_PRECISION_HINT"] == "f32"  # type: ignore[attr-defined]
    hint = fp32._compiled.get_property("INFERENCE_PRECISION_HINT")  # type: ignore[attr-defined]
    assert hint == ov.Type.f32
    default = open_session("openvino", path, precision="fp32", engine_default_precision=True)
    assert "INFERENCE_PRECISION_HINT" not in default._config  # type: ignore[attr-defined]


def test_predictor_takes_its_engine_settings_from_a_target(zoo_bundle: Bundle) -> None:
    from edgeft.runtime import Predictor

    openvino_only = parse_target(
        {"name": "ov-box", "engines": {"openvino": {"device": "CPU", "hint": "THROUGHPUT"}}}
    )
    predictor = Predictor(zoo_bundle, "openvino", target=openvino_only)
    compiled = predictor.session._compiled  # type: ignore[attr-defined]
    assert str(compiled.get_property("PERFORMANCE_HINT")).endswith("THROUGHPUT")
    with pytest.raises(EdgeftError, match="target ov-box does not run onnxruntime"):
        Predictor(zoo_bundle, "onnxruntime", target=openvino_only)

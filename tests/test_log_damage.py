"""A prediction log that cannot be kept, or that was damaged: ``serve --log`` refuses to start
with one line naming the file; the readers and the monitor report on the good rows, count the
damaged ones, and otherwise refuse with an ``EdgeftError``, never another exception.

Everything here runs on a tiny hand-made bundle (a pooled-colour ONNX graph and a made-up
reference profile), so no network is trained or exported."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from scipy.special import softmax

from edgeft.bench.server_process import free_port
from edgeft.bundle import (
    Bundle,
    ImagePreprocessing,
    Manifest,
    ModelEntry,
    TensorSpec,
    stage_bundle,
    write_manifest,
)
from edgeft.bundle.reference_statistics import ReferenceStatistics
from edgeft.errors import EdgeftError
from edgeft.monitor.active_learning import STRATEGIES, export_for_labelling
from edgeft.monitor.analysis import monitor_log
from edgeft.monitor.prediction_log import (
    LogLimits,
    ModelIdentity,
    PredictionLog,
    latest_kept,
    read_log,
    read_notes,
)
from edgeft.runtime.predictor import ModelOutputs
from tests.conftest import part_image
from tests.test_cli import EDGEFT, run

MODEL = "parts"
LABELS = ["dent", "ok"]
SKETCH = 3  # the tiny graph's embedding: its pooled colour
ROWS = 40


def tiny_bundle(out: Path, labels: list[str], items: int = 60) -> Bundle:
    """A servable bundle in a second: 8x8 images, mean colour -> logits and the sketch."""
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input"], ["pooled4"]),
            helper.make_node("Flatten", ["pooled4"], ["pooled"]),
            helper.make_node("MatMul", ["pooled", "weights"], ["logits"]),
            helper.make_node("Identity", ["pooled"], ["embedding"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(labels)]),
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", SKETCH]),
        ],
        [numpy_helper.from_array(np.ones((SKETCH, len(labels)), np.float32), "weights")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    rng = np.random.default_rng(0)
    profile = ReferenceStatistics(
        temperature=1.0,
        labels=list(labels),
        truth=rng.integers(0, len(labels), items),
        probabilities=softmax(rng.normal(size=(items, len(labels))), axis=1),
        statistics={"brightness": rng.normal(size=items)},
        embedding=rng.normal(size=(items, SKETCH)),
    )
    with stage_bundle(out) as staging:
        onnx.save(model, staging / "model.onnx")
        manifest = Manifest(
            task="image-classification",
            labels=list(labels),
            preprocessing=ImagePreprocessing(crop=(8, 8), resize=8),
            inputs=[TensorSpec("input", (-1, 3, 8, 8), "float32")],
            outputs=[
                TensorSpec("logits", (-1, len(labels)), "float32"),
                TensorSpec("embedding", (-1, SKETCH), "float32"),
            ],
            models=[ModelEntry("model.onnx", "onnxruntime", "fp32")],
            provenance={"base_model": "tiny"},
        )
        manifest.reference = profile.write(staging)
        write_manifest(staging, manifest)
    return Bundle.load(out)


def write_log(path: Path, bundle: str, labels: list[str] = LABELS, rows: int = ROWS) -> list[str]:
    """A real log as the server writes it: one version, statistics, sketches, every input
    kept, feedback on the first two rows, a note; in rollback-journal mode (one file), so that
    damage to its bytes is damage to the whole log. Returns the prediction ids."""
    rng = np.random.default_rng(1)
    writer = PredictionLog(path, LogLimits(keep_below=1.1))
    writer.register(ModelIdentity(MODEL, "1", labels, bundle))
    outputs = ModelOutputs(
        softmax(rng.normal(size=(rows, len(labels))), axis=1),
        rng.normal(size=(rows, SKETCH)),
    )
    images = [part_image(rng, "ok") for _ in range(rows)]
    ids = writer.record(MODEL, "1", outputs, {"brightness": rng.normal(size=rows)}, images)
    writer.flush()
    writer.feedback(ids[0], labels[0])
    writer.feedback(ids[1], labels[-1])
    writer.close()
    execute(
        path,
        "INSERT INTO notes VALUES (1800000000, 'kept inputs reached the cap')",
        "PRAGMA journal_mode=DELETE",
    )
    return ids


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return tiny_bundle(tmp_path_factory.mktemp("tiny") / "bundle", LABELS)


@pytest.fixture(scope="module")
def pristine(bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    log = tmp_path_factory.mktemp("pristine") / "log.sqlite"
    write_log(log, bundle.fingerprint)
    return log


def copy_log(log: Path, folder: Path) -> Path:
    """The log and its kept inputs, in ``folder``."""
    shutil.copyfile(log, folder / log.name)
    shutil.copytree(log.with_name(log.name + ".inputs"), folder / (log.name + ".inputs"))
    return folder / log.name


def execute(log: Path, *statements: str) -> None:
    with closing(sqlite3.connect(log, isolation_level=None)) as connection:
        for statement in statements:
            connection.execute(statement)


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single ``error:`` line of a refused command (exit 2, no traceback)."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


# -- 7. serve --log: a log that cannot be kept is refused up front --------------------------


def _read_only(folder: Path) -> list[str]:
    """A command prefix under which ``folder`` is a read-only filesystem: a read-only bind
    mount in a private mount namespace (root, as in CI); other users get permissions that
    refuse writing, which root would ignore."""
    if os.geteuid() != 0:
        for path in (folder, *folder.iterdir()):
            path.chmod(0o555 if path.is_dir() else 0o444)
        return []
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    prefix = ["unshare", "--mount", "sh", "-c", script, str(folder)]
    if shutil.which("unshare") is None or subprocess.run([*prefix, "true"]).returncode != 0:
        pytest.skip("no way to make a read-only filesystem here (unshare --mount refused)")
    return prefix


def _corrupt(log: Path) -> list[str]:
    data = bytearray(log.read_bytes())
    data[100:400] = b"\xff" * 300  # the first page's b-tree header and cells
    log.write_bytes(bytes(data))
    return []


def _not_a_database(log: Path) -> list[str]:
    log.write_text("time,label\n1,ok\n" * 200)
    return []


def _missing_folder(log: Path) -> list[str]:
    shutil.rmtree(log.parent)
    return []


def _folder(log: Path) -> list[str]:
    log.unlink()
    log.mkdir()
    return []


def _someone_elses_database(log: Path) -> list[str]:
    log.unlink()
    execute(log, "CREATE TABLE runs (id INTEGER, result TEXT)")
    return []


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (_corrupt, "not a usable prediction log: database disk image is malformed"),
        (_not_a_database, "not a usable prediction log: file is not a database"),
        (_missing_folder, "cannot write the prediction log: no folder"),
        (_folder, "not a usable prediction log: a folder"),
        (_someone_elses_database, "not a usable prediction log: it holds other tables"),
        (lambda log: _read_only(log.parent), "cannot write the prediction log"),
    ],
    ids=["corrupt", "not-a-database", "missing-folder", "folder", "foreign", "read-only"],
)
def test_serve_refuses_a_log_it_cannot_keep(
    make: Callable[[Path], list[str]], why: str, bundle: Bundle, pristine: Path, tmp_path: Path
) -> None:
    (tmp_path / "logs").mkdir()
    log = copy_log(pristine, tmp_path / "logs")
    prefix = make(log)
    command = [
        *prefix, *EDGEFT, "serve", str(bundle.root), "--engine", "onnxruntime",
        "--precision", "fp32", "--port", str(free_port()), "--log", str(log),
    ]  # fmt: skip
    env = os.environ | {"COLUMNS": "1000"}  # rich wraps at the terminal's width
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert one_error(result).startswith(f"error: {log}: {why}")


# -- 8. the monitor on a damaged log: the good rows, the damage counted, or one error --------


def damaged(pristine: Path, folder: Path, *statements: str) -> Path:
    log = copy_log(pristine, folder)
    execute(log, *statements)
    return log


def monitor(log: Path, bundle: Bundle, *options: str) -> subprocess.CompletedProcess[str]:
    return run("monitor", str(log), "--bundle", str(bundle.root), "--window", str(ROWS), *options)


@pytest.mark.parametrize(
    ("statement", "why"),
    [
        (
            "UPDATE predictions SET probabilities = substr(probabilities, 1, 5) WHERE seq = 3",
            "row 3: probabilities: 5 bytes, not 2 float32 values",
        ),
        (
            "UPDATE predictions SET statistics = '[/red]{brightness: 0.3' WHERE seq = 4",
            "row 4: statistics: not JSON ('[/red]{brightness: 0.3')",  # printed, not markup
        ),
    ],
    ids=["truncated-blob", "statistics-not-json"],
)
def test_the_monitor_reports_the_good_rows_and_counts_the_damaged_ones(
    statement: str, why: str, bundle: Bundle, pristine: Path, tmp_path: Path
) -> None:
    log = damaged(pristine, tmp_path, statement)
    (version,) = monitor_log(log, [bundle], str(ROWS)).versions
    assert version.damaged == 1 and version.damage[0].startswith(why), version.damage
    assert sum(w.items for w in version.windows) == ROWS - 1
    result = monitor(log, bundle)
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
    assert f"1 damaged row(s) of the log skipped (first: {why}" in result.stdout, result.stdout
    exported = export_for_labelling(log, tmp_path / "out", 3)
    assert exported.damaged == 1 and exported.to_label == 3 and exported.labelled == 2


@pytest.mark.parametrize(
    ("statement", "why"),
    [
        ('UPDATE models SET labels = \'["dent", "ok"\'', "models row 1: labels: not JSON"),
        ("DROP TABLE notes", "not a readable prediction log (no such table: notes)"),
    ],
    ids=["labels-not-json", "no-notes-table"],
)
def test_a_damaged_structure_is_one_error_naming_the_log(
    statement: str, why: str, bundle: Bundle, pristine: Path, tmp_path: Path
) -> None:
    log = damaged(pristine, tmp_path, statement)
    with pytest.raises(EdgeftError, match="^" + str(log)):
        monitor_log(log, [bundle], str(ROWS))
    assert one_error(monitor(log, bundle)).startswith(f"error: {log}: {why}")


def test_a_damaged_note_is_listed_as_damaged(pristine: Path, tmp_path: Path) -> None:
    log = damaged(pristine, tmp_path, "UPDATE notes SET time = 'yesterday'")
    ((when, note),) = read_notes(log)
    assert when == 0.0 and note.startswith("note row 1 is damaged: time: text 'yesterday'")


def test_export_uncertain_onto_an_existing_file_is_one_error(
    bundle: Bundle, pristine: Path, tmp_path: Path
) -> None:
    taken = tmp_path / "taken.txt"
    taken.write_text("an operator's notes")
    result = monitor(pristine, bundle, "--export-uncertain", "3", "--out", str(taken))
    assert one_error(result) == f"error: --out {taken}: exists and is not a folder; name a folder"
    assert taken.read_text() == "an operator's notes"
    with pytest.raises(EdgeftError, match="not a folder"):
        export_for_labelling(pristine, taken, 3)


# -- the property: any damage reads, counts, or refuses; nothing else escapes ----------------

TABLES = ("predictions", "models", "feedback", "notes")
COLUMNS = [
    ("predictions", c)
    for c in ("seq", "id", "time", "model", "version", "probabilities", "statistics")
] + [
    ("predictions", "embedding"),
    ("predictions", "input"),
    ("predictions", "predicted"),
    ("predictions", "confidence"),
    ("models", "labels"),
    ("models", "bundle"),
    ("models", "temperature"),
    ("models", "version"),
    ("feedback", "label"),
    ("feedback", "id"),
    ("notes", "time"),
    ("notes", "note"),
]
JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("ab"), inner),
    max_leaves=4,
)
VALUES = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["../../escape.png", "/etc/passwd", ".", "a\\b.png", "x" * 300, "[/]"]),
    st.sampled_from(["../escaped", '["../escaped", "ok"]', '["dent", "ok", "more"]']),
    st.binary(max_size=40),
    JSON.map(json.dumps),
)
ROW = st.none() | st.integers(1, ROWS)  # None: every row of the table
ROW_DAMAGE = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(COLUMNS), ROW, VALUES),
    st.tuples(
        st.just("cut-blob"),
        st.sampled_from(["probabilities", "embedding"]),
        ROW,
        st.integers(0, 16),
    ),
)
# Damage past one row, applied to half the examples only: most of it leaves nothing to read.
STRUCTURE_DAMAGE = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(TABLES)),
    st.tuples(st.just("cut-file"), st.floats(0, 1)),
    st.tuples(st.just("garble-file"), st.floats(0, 1), st.binary(min_size=1, max_size=64)),
)


def apply(log: Path, damage: tuple) -> None:
    """One damage to the log. A table is rebuilt without its constraints before a value is
    set, so NULLs and wrong types land where the schema would refuse them."""
    kind, *details = damage
    if kind in ("cut-file", "garble-file"):
        data = bytearray(log.read_bytes())
        at = int(details[0] * len(data))
        data = data[:at] if kind == "cut-file" else data[:at] + details[1] + data[at:]
        log.write_bytes(bytes(data))
        return
    if kind == "drop":
        execute(log, f"DROP TABLE IF EXISTS {details[0]}")
        return
    (table, column), row, value = (
        details if kind == "set" else (("predictions", details[0]), details[1], details[2])
    )
    where = "" if row is None else f" WHERE rowid = {row}"
    with closing(sqlite3.connect(log, isolation_level=None)) as connection:
        connection.executescript(
            f"CREATE TABLE loose AS SELECT * FROM {table}; DROP TABLE {table}; "
            f"ALTER TABLE loose RENAME TO {table};"
        )
        if kind == "set":
            connection.execute(f"UPDATE {table} SET {column} = ?{where}", (value,))
        else:
            connection.execute(
                f"UPDATE {table} SET {column} = substr({column}, 1, ?){where}", (value,)
            )


def either(call: Callable[[], object]) -> object:
    """What ``call`` returns, or None when it refused with an ``EdgeftError``."""
    try:
        return call()
    except EdgeftError:
        return None


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    damages=st.lists(ROW_DAMAGE, min_size=1, max_size=3),
    structure=st.none() | STRUCTURE_DAMAGE,
    strategy=st.sampled_from(STRATEGIES),
)
def test_a_damaged_log_is_read_counted_or_refused(
    damages: list[tuple],
    structure: tuple | None,
    strategy: str,
    bundle: Bundle,
    pristine: Path,
    tmp_path: Path,
) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    log = copy_log(pristine, folder)
    for damage in [*damages, *([structure] if structure else [])]:
        try:
            apply(log, damage)
        except sqlite3.DatabaseError:
            break  # the file is past SQLite's own reading: the readers face it as it is
    versions = either(lambda: read_log(log))
    for version in versions or []:
        assert isinstance(version.labels, list) and len(version.labels) >= 1
        assert version.probabilities.shape == (len(version), len(version.labels))
        assert np.isfinite(version.probabilities).all() and np.isfinite(version.times).all()
        assert all(len(v) == len(version) for v in version.statistics.values())
        assert all(n is None or ("/" not in n and not n.startswith(".")) for n in version.inputs)
        assert len(version.damage) == min(version.damaged, 5)
    either(lambda: read_log(log, MODEL, "1", last=7))
    either(lambda: read_notes(log))
    for kept in either(lambda: latest_kept(log, 10, 1.1)) or []:
        assert kept.file.parent == log.with_name(log.name + ".inputs")
    either(lambda: monitor_log(log, [bundle], "30"))  # a window of 30 learns its bands
    out, before = folder / "out", set(tmp_path.rglob("*"))
    either(lambda: export_for_labelling(log, out, 3, strategy))
    written = [p for p in set(tmp_path.rglob("*")) - before if p.is_file()]
    assert all(p.resolve().is_relative_to(out.resolve()) for p in written), written

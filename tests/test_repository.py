"""The model repository: numbered immutable versions, aliases with history, and a server that
follows them, swapping versions under load without a failed request."""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from edgeft.atomic import staging_folder
from edgeft.bench.server_process import ServerProcess
from edgeft.bundle import (
    Bundle,
    ImagePreprocessing,
    Manifest,
    ModelEntry,
    TensorSpec,
    write_manifest,
)
from edgeft.cli import app
from edgeft.errors import EdgeftError
from edgeft.repository import ModelRepository, RepositoryNameError, VersionIntegrityError
from edgeft.repository.store import STAGING_GRACE_S
from edgeft.serve.protocol import encode_infer_request

runner = CliRunner()
MODEL = "cats"
EDGEFT = [sys.executable, "-m", "edgeft"]


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def repo(zoo_bundle: Bundle, tmp_path: Path) -> Path:
    """Two versions of the zoo bundle, production on version 1."""
    root = tmp_path / "repo"
    for _ in range(2):
        cli("repo", "push", str(zoo_bundle.root), str(root), "--name", MODEL, "--no-validate")
    cli("repo", "promote", str(root), MODEL, "1")
    return root


def test_push_promote_rollback_history_and_rm(repo: Path, zoo_bundle: Bundle) -> None:
    rows = json.loads(cli("repo", "list", str(repo), "--json"))
    assert [(r["model"], r["version"], r["aliases"]) for r in rows] == [
        (MODEL, 1, ["production"]),
        (MODEL, 2, []),
    ]
    assert rows[0]["manifest_sha256"] == rows[1]["manifest_sha256"]  # same content, two versions
    cli("repo", "promote", str(repo), MODEL, "2")
    cli("repo", "promote", str(repo), MODEL, "1", "--alias", "candidate")
    assert "back to 1" in cli("repo", "rollback", str(repo), MODEL)
    history = json.loads(cli("repo", "history", str(repo), MODEL, "--json"))
    assert [(h["alias"], h["action"], h["from_version"], h["to_version"]) for h in history] == [
        ("production", "promote", None, 1),
        ("production", "promote", 1, 2),
        ("candidate", "promote", None, 1),
        ("production", "rollback", 2, 1),
    ]
    assert all(h["who"] and h["at"] for h in history)
    cli("repo", "rm", str(repo), MODEL, "2")
    assert [r["version"] for r in json.loads(cli("repo", "list", str(repo), "--json"))] == [1]
    # numbers are never reused: the next push is 3
    cli("repo", "push", str(zoo_bundle.root), str(repo), "--name", MODEL, "--no-validate")
    assert [r["version"] for r in json.loads(cli("repo", "list", str(repo), "--json"))] == [1, 3]


def test_mistakes_are_refused_and_change_nothing(repo: Path, tmp_path: Path) -> None:
    repository = ModelRepository(repo)
    before = repository.aliases.aliases()
    with pytest.raises(EdgeftError, match=r"has no version 7 \(has: 1, 2\)"):
        repository.promote(MODEL, 7)
    with pytest.raises(EdgeftError, match="production points to"):
        repository.remove(MODEL, 1)
    with pytest.raises(EdgeftError, match="no previous version"):
        repository.rollback(MODEL)  # production has only ever been 1
    (repo / MODEL / "2" / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(EdgeftError, match=r"version 2 is damaged.*does not match its sha256"):
        repository.promote(MODEL, 2)
    assert repository.aliases.aliases() == before
    # a version being written (no number yet, or no manifest) is not a version
    (repo / MODEL / ".next.partial-1-x").mkdir()
    (repo / MODEL / "9").mkdir()
    assert [v.version for v in repository.versions(MODEL)] == [1, 2]
    # an alias database edited into nonsense is refused with its name
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "aliases.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(EdgeftError, match="not a usable alias database"):
        ModelRepository(tmp_path / "bad").aliases.aliases()


def test_push_refuses_a_tampered_bundle(zoo_bundle: Bundle, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(zoo_bundle.root, copy)
    (copy / "model.onnx").write_bytes(b"tampered")
    result = runner.invoke(app, ["repo", "push", str(copy), str(tmp_path / "repo")])
    assert result.exit_code != 0 and "does not match its sha256" in str(result.exception)
    assert ModelRepository(tmp_path / "repo").models() == []


class VersionedLoad:
    """Clients sending v2 requests back to back, counting status codes and answering versions."""

    def __init__(self, server: ServerProcess, clients: int = 8) -> None:
        pixels = np.zeros((1, 3, 224, 224), dtype=np.float32)
        self.body, self.headers = encode_infer_request({"input": pixels})
        self.server = server
        self.codes: Counter[int] = Counter()
        self.versions: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._client) for _ in range(clients)]

    def _client(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        while not self.stop.is_set():
            connection.request("POST", f"/v2/models/{MODEL}/infer", self.body, self.headers)
            response = connection.getresponse()
            data = response.read()
            length = int(response.headers.get("Inference-Header-Content-Length") or len(data))
            version = json.loads(data[:length]).get("model_version")
            with self.lock:
                self.codes[response.status] += 1
                self.versions.append(version)

    def wait_for_version(self, version: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if self.versions[-8:] == [version] * 8:
                    return
            time.sleep(0.05)
        raise AssertionError(f"version {version} never answered; last: {self.versions[-8:]}")

    def __enter__(self) -> VersionedLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def test_a_served_repository_swaps_versions_under_load_without_a_failed_request(
    repo: Path,
) -> None:
    options = ["--engine", "onnxruntime", "--max-wait-ms", "2"]
    with ServerProcess(repo, options) as server, VersionedLoad(server) as load:
        load.wait_for_version("1")
        cli("repo", "promote", str(repo), MODEL, "2")
        load.wait_for_version("2")
        cli("repo", "rollback", str(repo), MODEL)
        load.wait_for_version("1")
        # a version that does not load is refused; the serving one stays
        (repo / MODEL / "2" / "model.onnx").write_bytes(b"tampered after the push")
        ModelRepository(repo).aliases.set(MODEL, "production", 2)  # as a hand edit would
        deadline = time.monotonic() + 30
        while not any(
            row.get("version") == "2" and row["state"] == "UNAVAILABLE"
            for row in json.loads(server.request("POST", "/v2/repository/index")[1])
        ):
            assert time.monotonic() < deadline, "the tampered version was not reported"
            time.sleep(0.1)
        time.sleep(1)
    assert set(load.codes) == {200}, load.codes
    assert sum(load.codes.values()) > 100
    assert load.versions[-1] == "1"
    swaps = sum(a != b for a, b in zip(load.versions, load.versions[1:], strict=False))
    assert swaps >= 2
    assert "does not match its sha256" in server.output


def test_repository_index_and_unload_load(repo: Path) -> None:
    with ServerProcess(repo, ["--engine", "onnxruntime"]) as server:
        index = json.loads(server.request("POST", "/v2/repository/index")[1])
        assert index == [{"name": MODEL, "version": "1", "state": "READY"}]
        assert server.request("POST", f"/v2/repository/models/{MODEL}/unload")[0] == 200
        status, body = server.request("GET", f"/v2/models/{MODEL}")
        assert status == 404 and "unloaded" in json.loads(body)["error"]
        assert server.request("GET", "/v2/health/ready")[0] == 200  # it is not meant to serve
        assert server.request("POST", f"/v2/repository/models/{MODEL}/load")[0] == 200
        assert server.request("GET", f"/v2/models/{MODEL}/versions/1")[0] == 200
        assert server.request("POST", "/v2/repository/models/nope/load")[0] == 404


def test_alias_database_survives_a_concurrent_reader(repo: Path) -> None:
    """A server reads the aliases while a command writes them: SQLite never shows half."""
    path = repo / "aliases.sqlite"
    reader = sqlite3.connect(path)
    reader.execute("BEGIN")
    assert reader.execute("SELECT version FROM aliases").fetchone() == (1,)
    ModelRepository(repo).promote(MODEL, 2)
    assert reader.execute("SELECT version FROM aliases").fetchone() == (1,)  # its snapshot
    reader.execute("COMMIT")
    assert reader.execute("SELECT version FROM aliases").fetchone() == (2,)
    reader.close()


def test_a_canary_takes_its_share_and_a_shadow_is_compared(repo: Path) -> None:
    options = [
        "--engine", "onnxruntime", "--canary", f"{MODEL}@2:50", "--shadow", f"{MODEL}@2",
    ]  # fmt: skip
    with ServerProcess(repo, options) as server:
        with VersionedLoad(server, clients=4) as load:
            time.sleep(3)
        shown = runner.invoke(app, ["shadow", MODEL, "--url", server.url, "--json"])
        missing = server.request("GET", "/v1/models/nope/shadow")[0]
    assert set(load.codes) == {200}, load.codes
    answered = Counter(load.versions)
    assert answered["1"] > 0 and answered["2"] > 0, answered  # about half each
    assert 0.25 < answered["2"] / sum(answered.values()) < 0.75, answered
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.stdout)
    assert report["production_version"] == "1" and report["shadow_version"] == "2"
    assert report["items"] > 0 and report["agreement"] == 1.0  # the same weights
    assert report["shadow_latency_ms"]["p50"] > 0 and report["changes"] == []
    assert missing == 404


@pytest.mark.parametrize("spec", ["cats", "cats@x:10", "cats@2", "cats@2:0", "cats@2:150"])
def test_canary_specs_are_checked(spec: str) -> None:
    from edgeft.serve.traffic import parse_side_version

    with pytest.raises(EdgeftError, match=r"NAME@VERSION:PERCENT|percent"):
        parse_side_version(spec, canary=True)


# --- names, numbers and hashes: what an attacker on the box tried -----------------------------

NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # the documented rule, restated
OWN_FILES = [  # the repository's own root files, SQLite's companions and a bundle's manifest
    "aliases.sqlite", "aliases.sqlite-wal", "aliases.sqlite-shm", "aliases.sqlite-journal",
    "ALIASES.SQLITE-wal", "edgeft.json",
]  # fmt: skip
OWN_PREFIXES = ("aliases.sqlite", "edgeft.json")


def tiny_bundle(folder: Path, weights: bytes = b"tiny") -> Path:
    """A bundle whose one 'model' is a few bytes: the repository checks hashes, never the model,
    so pushing it costs milliseconds."""
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(weights)
    manifest = Manifest(
        task="image-classification",
        labels=["ok", "scratch"],
        preprocessing=ImagePreprocessing(crop=(8, 8), resize=8),
        inputs=[TensorSpec("input", (-1, 3, 8, 8), "float32")],
        outputs=[TensorSpec("logits", (-1, 2), "float32")],
        models=[ModelEntry("model.onnx", "onnxruntime", "fp32")],
    )
    write_manifest(folder, manifest)
    return folder


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return tiny_bundle(tmp_path / "tiny")


def killed_push(root: Path, bundle: Path, name: str, dies_at: str) -> None:
    """A push in a child process that dies (as under ``kill -9``: no cleanup) when it calls
    ``dies_at`` of ``edgeft.repository.store``."""
    code = (
        "import os, sys\n"
        "import edgeft.repository.store as store\n"
        f"store.{dies_at} = lambda *args: os._exit(9)\n"
        "store.ModelRepository(sys.argv[1], create=True).push(sys.argv[2], sys.argv[3], False)\n"
    )
    child = subprocess.run([sys.executable, "-c", code, str(root), str(bundle), name], timeout=60)
    assert child.returncode == 9


def rewrite_whole(version: Path, weights: bytes) -> None:
    """Change a version's model and re-hash its manifest, so the bundle alone looks intact."""
    (version / "model.onnx").write_bytes(weights)
    write_manifest(version, Bundle.load(version, verify=False).manifest)
    Bundle.load(version)


@pytest.mark.parametrize("name", [*OWN_FILES, ""])
def test_names_of_the_repositorys_own_files_are_refused(name: str, tiny: Path) -> None:
    """Defect 4: ``--name aliases.sqlite-wal`` broke every later command, ``''`` became the
    bundle folder's name."""
    root = tiny.parent / "repo"
    cli("repo", "push", str(tiny), str(root), "--name", MODEL, "--no-validate")
    result = runner.invoke(
        app, ["repo", "push", str(tiny), str(root), "--name", name, "--no-validate"]
    )
    assert isinstance(result.exception, RepositoryNameError), result.output
    assert f"model name {name!r}" in str(result.exception)
    assert [p.name for p in root.iterdir() if p.is_dir()] == [MODEL]
    cli("repo", "promote", str(root), MODEL, "1")  # the alias database still takes writes
    assert [r["version"] for r in json.loads(cli("repo", "list", str(root), "--json"))] == [1]
    assert ModelRepository(root).resolve(MODEL).version == 1  # what `serve REPO` serves


def test_a_refused_name_is_one_error_line_from_the_cli(tiny: Path) -> None:
    """``--name aliases.sqlite`` was a FileExistsError; a name echoed back is cut to a line."""
    root = tiny.parent / "repo"
    for name, shown in [("aliases.sqlite", "'aliases.sqlite'"), ("x\n" * 100, "'x\\nx\\n")]:
        child = subprocess.run(
            [*EDGEFT, "repo", "push", str(tiny), str(root), "--name", name, "--no-validate"],
            capture_output=True,
            text=True,
            env=os.environ | {"COLUMNS": "200"},  # as wide as the message: one line
            timeout=120,
        )
        assert child.returncode == 2, child.stderr
        lines = child.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: model name " + shown), lines
        assert len(lines[0]) < 300
    assert ModelRepository(root).models() == []


def test_model_names_that_are_paths_are_refused_by_every_command(tiny: Path) -> None:
    """Defect 5: ``repo rm REPO /abs/victim 1`` deleted a bundle outside the repository and
    ``repo promote REPO ../victim 1`` pointed an alias at one."""
    root = tiny.parent / "repo"
    repository = ModelRepository(root, create=True)
    repository.push(tiny, MODEL, validate=False)
    victim = tiny.parent / "victim"
    shutil.copytree(tiny, victim / "1")
    for model in (str(victim), "../victim", "victim/..", "..", f"{MODEL}/../../victim"):
        for command in (["rm", model, "1"], ["promote", model, "1"], ["rollback", model]):
            result = runner.invoke(app, ["repo", command[0], str(root), *command[1:]])
            assert isinstance(result.exception, RepositoryNameError), (command, result.output)
        with pytest.raises(RepositoryNameError, match="model name"):
            repository.history(model)
    with pytest.raises(RepositoryNameError, match="version 0"):
        repository.remove(MODEL, 0)
    Bundle.load(victim / "1")  # still there, whole
    assert repository.aliases.aliases() == {}


def test_a_killed_push_leaves_nothing_behind_after_the_next_write(tiny: Path) -> None:
    """Item a: a push killed while copying left a hidden staging folder for ever. The rule: a
    staging folder is deleted when no process holds its lock and it is older than the grace."""
    root = tiny.parent / "repo"
    killed_push(root, tiny, MODEL, dies_at="sync_tree")
    (left,) = (root / MODEL).glob(".next.partial-*")
    assert (left / "model.onnx").exists()
    held, fresh = (staging_folder(root / MODEL / "next") for _ in range(2))
    long_ago = time.time() - 2 * STAGING_GRACE_S
    for folder in (left, held):
        os.utime(folder, (long_ago, long_ago))
    descriptor = os.open(held, os.O_RDONLY)  # as a live push holds its staging folder
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        assert ModelRepository(root).push(tiny, MODEL, validate=False).version == 1
    finally:
        os.close(descriptor)
    assert not left.exists() and held.exists() and fresh.exists()


def test_version_numbers_are_never_reused(tiny: Path) -> None:
    """Item b: a push killed between the rename and the database write left a version without
    a record, whose number came back after ``repo rm``."""
    root = tiny.parent / "repo"
    repository = ModelRepository(root, create=True)
    repository.push(tiny, MODEL, validate=False)
    killed_push(root, tiny, MODEL, dies_at="sync_folder")  # just after the rename to 2
    repository.remove(MODEL, 2)
    assert repository.push(tiny, MODEL, validate=False).version == 3
    # a version an older edgeft left without a record keeps its number too once removed
    with contextlib.closing(sqlite3.connect(root / "aliases.sqlite")) as db, db:
        db.execute("DELETE FROM pushed WHERE version = 3")
    repository.remove(MODEL, 3)
    assert repository.push(tiny, MODEL, validate=False).version == 4


def test_a_version_rewritten_whole_is_never_promoted_rolled_back_to_or_served(
    tiny: Path,
) -> None:
    """Item c: the manifest hash recorded at push was never compared; now every way to a
    version (promote, rollback, resolve, a server's canary) compares it."""
    from edgeft.serve.models import production_versions

    repository = ModelRepository(tiny.parent / "repo", create=True)
    for _ in range(2):
        repository.push(tiny, MODEL, validate=False)
    repository.promote(MODEL, 1)
    repository.promote(MODEL, 2)
    rewrite_whole(repository.root / MODEL / "1", b"the attacker's weights")
    before = repository.aliases.aliases()
    changed = r"model 'cats' version 1 changed after it was pushed"
    with pytest.raises(VersionIntegrityError, match=changed):
        repository.rollback(MODEL)
    with pytest.raises(VersionIntegrityError, match=changed):
        repository.promote(MODEL, 1, "candidate")
    assert repository.aliases.aliases() == before
    repository.aliases.set(MODEL, "production", 1)  # as a hand edit of the database would
    with pytest.raises(VersionIntegrityError, match=changed):
        repository.resolve(MODEL)
    assert production_versions(repository) == {}  # the server serves it not
    # a version folder no push recorded is never the newest nor promoted
    repository.aliases.remove(MODEL, "production")
    shutil.copytree(tiny, repository.root / MODEL / "7")
    assert repository.resolve(MODEL).version == 2
    with pytest.raises(VersionIntegrityError, match="version 7 has no push record"):
        repository.promote(MODEL, 7)
    repository.remove(MODEL, 1)  # a damaged version can still be removed


OUTSIDE = "<the victim folder, absolute>"
BAD_NAMES = [
    *OWN_FILES, "", ".", "..", "/", "../victim", "a/b", "a\\b", "cats/..", "cats\n", " cats",
    "-cats", ".cats", "c" * 65, "\u00e7ats", "\uff43ats", "a\x00b", "\u202ecats", OUTSIDE,
]  # fmt: skip
model_names = st.one_of(
    st.sampled_from([*BAD_NAMES, "victim", "c" * 64]),
    st.text(max_size=70),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,70}", fullmatch=True),
    st.tuples(st.sampled_from(OWN_FILES), st.text("-walshmjournal.x", max_size=6)).map("".join),
)


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    """``outside/`` holds a bundle to push, a victim bundle and the repository: only the
    repository's folder may change."""
    outside = tmp_path / "outside"
    tiny_bundle(outside / "bundle")
    shutil.copytree(outside / "bundle", outside / "victim" / "1")
    ModelRepository(outside / "repo", create=True)
    return outside


def tree(folder: Path, leave_out: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` but ``leave_out``'s, with each file's content."""
    return {
        str(p): p.read_bytes() if p.is_file() else None
        for p in folder.rglob("*")
        if not p.is_relative_to(leave_out)
    }


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=model_names, version=st.integers(min_value=-1, max_value=3))
def test_every_entry_point_refuses_a_bad_model_name_or_stays_inside(
    sentinel: Path, name: str, version: int
) -> None:
    root = sentinel / "repo"
    name = str(sentinel / "victim") if name == OUTSIDE else name
    repository = ModelRepository(root)
    before = tree(sentinel.parent, leave_out=root)
    calls: dict[str, Callable[[], object]] = {
        "push": lambda: repository.push(sentinel / "bundle", name, validate=False),
        "versions": lambda: repository.versions(name),
        "version": lambda: repository.version(name, version),
        "resolve": lambda: repository.resolve(name),
        "promote": lambda: repository.promote(name, version),
        "rollback": lambda: repository.rollback(name),
        "history": lambda: repository.history(name),
        "remove": lambda: repository.remove(name, version),
    }
    valid = bool(NAME_RULE.fullmatch(name)) and not name.lower().startswith(OWN_PREFIXES)
    for entry_point, call in calls.items():
        try:
            call()
        except RepositoryNameError as exc:  # a bad version is refused by the same rule
            assert not valid or str(exc).startswith("version "), (entry_point, exc)
        except EdgeftError as exc:  # no such version, no previous version...
            assert valid and entry_point != "push", (entry_point, exc)
        else:
            assert valid, f"{entry_point} went on with the model name {name!r}"
    assert tree(sentinel.parent, leave_out=root) == before
    for entry in root.iterdir():
        if entry.is_file():
            assert entry.name.startswith("aliases.sqlite"), entry
        else:
            assert NAME_RULE.fullmatch(entry.name), entry
            assert not entry.name.lower().startswith(OWN_PREFIXES), entry

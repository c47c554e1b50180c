"""The model repository: numbered immutable versions, aliases with history, and a server that
follows them, swapping versions under load without a failed request."""

from __future__ import annotations

import http.client
import json
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeft.bundle import Bundle
from edgeft.cli import app
from edgeft.errors import EdgeftError
from edgeft.repository import ModelRepository
from edgeft.serve.process import ServerProcess
from edgeft.serve.protocol import encode_infer_request

runner = CliRunner()
MODEL = "cats"


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
    import shutil

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

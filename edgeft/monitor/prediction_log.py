"""The prediction log on the box: SQLite (WAL), written off the request path, bounded.

Each prediction gets an id (returned to the client) and a row: time, model and version,
probabilities, input statistics and the embedding sketch. ``POST /v1/feedback`` adds the label
an operator found. A sample of inputs, and every low-confidence one, are kept as files beside
the database (``LOG.inputs/``) for labelling, under a disk cap.

Serving never waits for, or fails because of, the log: records go through a bounded queue to
one writer thread (a full queue drops the record and counts it); rows past ``max_rows`` or
``max_bytes`` are rotated out oldest first, with their kept inputs; a write error (a full disk)
stops keeping inputs or drops that batch, is logged and noted in the database, and serving goes on.
"""

from __future__ import annotations

import io
import json
import logging
import queue
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgeft.errors import EdgeftError
from edgeft.monitor.input_statistics import Statistics
from edgeft.runtime.predictor import ModelOutputs

log = logging.getLogger("edgeft.monitor")

SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    model TEXT NOT NULL, version TEXT NOT NULL, labels TEXT NOT NULL,
    bundle TEXT NOT NULL, temperature REAL NOT NULL, PRIMARY KEY (model, version));
CREATE TABLE IF NOT EXISTS predictions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, time REAL NOT NULL,
    model TEXT NOT NULL, version TEXT NOT NULL, predicted INTEGER NOT NULL,
    confidence REAL NOT NULL, probabilities BLOB NOT NULL, statistics TEXT NOT NULL,
    embedding BLOB, input TEXT);
CREATE INDEX IF NOT EXISTS predictions_by_version ON predictions (model, version, seq);
CREATE TABLE IF NOT EXISTS feedback (
    id TEXT PRIMARY KEY, label TEXT NOT NULL, time REAL NOT NULL);
CREATE TABLE IF NOT EXISTS notes (time REAL NOT NULL, note TEXT NOT NULL);
"""
USER_VERSION = 1


class UnknownPrediction(EdgeftError):
    """Feedback for an id the log does not hold (never logged, or rotated out): a 404."""


@dataclass(frozen=True)
class LogLimits:
    """Every size the log can reach. ``keep_below``: inputs whose top probability is under it
    are kept; ``keep_share``: the share of the others kept as a random sample."""

    max_rows: int = 1_000_000
    max_bytes: int = 2 * 1024**3
    max_input_bytes: int = 1024**3
    keep_below: float = 0.7
    keep_share: float = 0.02
    max_queue: int = 4096
    max_queued_input_bytes: int = 64 * 1024**2


@dataclass(frozen=True)
class ModelIdentity:
    """A served model version as the log records it: its labels, its bundle's fingerprint
    (``Bundle.fingerprint``) and the temperature its served probabilities were divided by."""

    name: str
    version: str
    labels: list[str]
    bundle: str
    temperature: float = 1.0


@dataclass
class _Record:
    id: str
    time: float
    model: str
    version: str
    probabilities: np.ndarray
    statistics: dict[str, float]
    embedding: np.ndarray | None
    kept: Any = None  # bytes, a path, a PIL image, a uint8 array or a text


@dataclass
class LogCounters:
    written: int = 0
    dropped: int = 0  # queue full or a failed write
    kept_inputs: int = 0
    rotated: int = 0
    keeping_inputs: bool = True


def connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def open_database(path: Path) -> sqlite3.Connection:
    """Create or open the log; a file of a newer layout is refused rather than misread."""
    connection = connect(path)
    found = connection.execute("PRAGMA user_version").fetchone()[0]
    if found > USER_VERSION:
        connection.close()
        raise EdgeftError(f"{path}: prediction log layout {found} is newer than this edgeft's")
    connection.executescript(SCHEMA)
    connection.execute(f"PRAGMA user_version={USER_VERSION}")
    return connection


class PredictionLog:
    """``record`` returns ids at once; one thread writes them in batches."""

    def __init__(self, path: str | Path, limits: LogLimits | None = None) -> None:
        self.path = Path(path)
        self.limits = limits or LogLimits()
        self.inputs_dir = self.path.with_name(self.path.name + ".inputs")
        self.counters = LogCounters()
        self._queue: queue.Queue[_Record | None] = queue.Queue(self.limits.max_queue)
        self._queued_input_bytes = 0
        self._lock = threading.Lock()  # the queued-bytes count
        self._noted: set[str] = set()
        self._connection = open_database(self.path)
        self._rows = self._connection.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
        self._input_bytes = sum(f.stat().st_size for f in self.inputs_dir.glob("*"))
        self._thread = threading.Thread(target=self._write_loop, name="edgeft-log", daemon=True)
        self._thread.start()

    def register(self, model: ModelIdentity) -> None:
        """Say which bundle a model version is (once per version), so the monitor can pair
        its rows with that bundle's reference."""
        with connect(self.path) as connection:
            connection.execute(
                "INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?, ?)",
                (
                    model.name,
                    model.version,
                    json.dumps(model.labels),
                    model.bundle,
                    model.temperature,
                ),
            )

    def record(
        self,
        model: str,
        version: str,
        outputs: ModelOutputs,
        statistics: Statistics,
        items: Sequence[Any] | None = None,
    ) -> list[str]:
        """Queue one row per item; never blocks and never raises for the log's own troubles."""
        ids = [uuid.uuid4().hex for _ in range(len(outputs))]
        now = time.time()
        for i, row_id in enumerate(ids):
            probabilities = outputs.probabilities[i]
            kept = (
                items[i] if items is not None and self._keep(float(probabilities.max())) else None
            )
            size = _size_of(kept)
            with self._lock:
                if kept is not None and (
                    self._queued_input_bytes + size > self.limits.max_queued_input_bytes
                ):
                    kept, size = None, 0
                self._queued_input_bytes += size
            record = _Record(
                row_id,
                now,
                model,
                version,
                probabilities.astype(np.float32),
                {name: float(values[i]) for name, values in statistics.items()},
                None if outputs.embedding is None else outputs.embedding[i].astype(np.float32),
                kept,
            )
            try:
                self._queue.put_nowait(record)
            except queue.Full:
                self.counters.dropped += 1
                with self._lock:
                    self._queued_input_bytes -= size
        return ids

    def feedback(self, prediction_id: str, label: str) -> None:
        """Record the label an operator found for a logged prediction."""
        self.flush()
        with connect(self.path) as connection:
            row = connection.execute(
                "SELECT m.labels FROM predictions p JOIN models m "
                "ON p.model = m.model AND p.version = m.version WHERE p.id = ?",
                (prediction_id,),
            ).fetchone()
            if row is None:
                raise UnknownPrediction(f"no logged prediction has id {prediction_id!r}")
            labels = json.loads(row[0])
            if label not in labels:
                raise EdgeftError(f"label {label!r} is not one of the model's {labels}")
            connection.execute(
                "INSERT OR REPLACE INTO feedback (id, label, time) VALUES (?, ?, ?)",
                (prediction_id, label, time.time()),
            )

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait (a bounded time) until what was recorded so far is written."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)

    def close(self) -> None:
        self.flush()
        self._queue.put(None)
        self._thread.join(timeout=10)
        self._connection.close()

    def _keep(self, confidence: float) -> bool:
        if not self.counters.keeping_inputs:
            return False
        return confidence < self.limits.keep_below or random.random() < self.limits.keep_share

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            while first is not None and len(batch) < 512:
                try:
                    batch.append(self._queue.get(timeout=0.05))
                except queue.Empty:
                    break
            records = [r for r in batch if r is not None]
            try:
                if records:
                    self._write(records)
            except Exception as exc:  # the log never takes the server down
                self.counters.dropped += len(records)
                log.error("prediction log: %d row(s) not written: %s", len(records), exc)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if None in batch:
                return

    def _write(self, records: list[_Record]) -> None:
        rows = []
        for record in records:
            rows.append(
                (
                    record.id,
                    record.time,
                    record.model,
                    record.version,
                    int(record.probabilities.argmax()),
                    float(record.probabilities.max()),
                    record.probabilities.tobytes(),
                    json.dumps(
                        {k: None if np.isnan(v) else v for k, v in record.statistics.items()}
                    ),
                    None if record.embedding is None else record.embedding.tobytes(),
                    self._store_input(record),
                )
            )
        with self._connection:
            self._connection.executemany(
                "INSERT INTO predictions (id, time, model, version, predicted, confidence, "
                "probabilities, statistics, embedding, input) VALUES (?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
        self._rows += len(rows)
        self.counters.written += len(rows)
        self._rotate()

    def _store_input(self, record: _Record) -> str | None:
        kept, record.kept = record.kept, None
        if kept is None:
            return None
        with self._lock:
            self._queued_input_bytes -= _size_of(kept)
        if not self.counters.keeping_inputs:
            return None
        try:
            name, data = _as_file(record.id, kept)
            if self._input_bytes + len(data) > self.limits.max_input_bytes:
                self._note_once(
                    f"kept inputs reached the cap of {self.limits.max_input_bytes:,} bytes; "
                    "inputs are kept again as rotation frees room"
                )
                return None
            self.inputs_dir.mkdir(exist_ok=True)
            (self.inputs_dir / name).write_bytes(data)
        except OSError as exc:
            self.counters.keeping_inputs = False
            self._note_once(f"could not write a kept input ({exc}); no more inputs are kept")
            return None
        except (ValueError, TypeError) as exc:  # not an image after all: nothing to keep
            log.warning("prediction log: input of %s not kept: %s", record.id, exc)
            return None
        self._input_bytes += len(data)
        self.counters.kept_inputs += 1
        return name

    def _note_once(self, why: str) -> None:
        """Log and record in the database (once per reason) why an input was not kept;
        predictions are logged whatever happens to their inputs."""
        if why in self._noted:
            return
        self._noted.add(why)
        log.error("prediction log: %s", why)
        try:
            with self._connection:
                self._connection.execute("INSERT INTO notes VALUES (?, ?)", (time.time(), why))
        except sqlite3.Error:
            pass  # the disk is full: the log line above says it

    def _rotate(self) -> None:
        """Past a limit, drop the oldest tenth of the rows (and their inputs) at once."""
        page_size, pages, free = (
            self._connection.execute(f"PRAGMA {p}").fetchone()[0]
            for p in ("page_size", "page_count", "freelist_count")
        )
        over_bytes = (pages - free) * page_size > self.limits.max_bytes
        if self._rows <= self.limits.max_rows and not over_bytes:
            return
        drop = max(self._rows - int(self.limits.max_rows * 0.9), self._rows // 10, 1)
        with self._connection:
            cutoff = self._connection.execute(
                "SELECT seq FROM predictions ORDER BY seq LIMIT 1 OFFSET ?", (drop - 1,)
            ).fetchone()[0]
            files = self._connection.execute(
                "SELECT input FROM predictions WHERE seq <= ? AND input IS NOT NULL", (cutoff,)
            ).fetchall()
            self._connection.execute(
                "DELETE FROM feedback WHERE id IN (SELECT id FROM predictions WHERE seq <= ?)",
                (cutoff,),
            )
            removed = self._connection.execute(
                "DELETE FROM predictions WHERE seq <= ?", (cutoff,)
            ).rowcount
        for (name,) in files:
            path = self.inputs_dir / name
            self._input_bytes -= path.stat().st_size if path.exists() else 0
            path.unlink(missing_ok=True)
        self._rows -= removed
        self.counters.rotated += removed


def _size_of(kept: Any) -> int:
    if kept is None:
        return 0
    if isinstance(kept, bytes | str):
        return len(kept)
    if isinstance(kept, np.ndarray):
        return kept.nbytes
    return 1024


def _as_file(prediction_id: str, kept: Any) -> tuple[str, bytes]:
    """A kept input as a file name and its bytes: images in their own format (PNG for arrays
    and decoded images), texts as UTF-8."""
    if isinstance(kept, str):
        return f"{prediction_id}.txt", kept.encode("utf-8")
    if isinstance(kept, Path):
        kept = kept.read_bytes()
    if isinstance(kept, bytes):
        with Image.open(io.BytesIO(kept)) as image:
            suffix = (image.format or "png").lower().replace("jpeg", "jpg")
        return f"{prediction_id}.{suffix}", kept
    image = kept if isinstance(kept, Image.Image) else Image.fromarray(kept)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return f"{prediction_id}.png", buffer.getvalue()


@dataclass
class LoggedVersion:
    """Every logged prediction of one model version, oldest first, as arrays."""

    model: str
    version: str
    labels: list[str]
    bundle: str
    temperature: float
    ids: list[str]
    times: np.ndarray
    probabilities: np.ndarray
    statistics: dict[str, np.ndarray]
    embedding: np.ndarray | None
    inputs: list[str | None]
    feedback: dict[str, str] = field(default_factory=dict)  # id -> label

    def __len__(self) -> int:
        return len(self.ids)


def read_log(
    path: str | Path, model: str | None = None, version: str | None = None, last: int | None = None
) -> list[LoggedVersion]:
    """The log, one entry per (model, version): never mixed, since each version has its own
    reference and its own behaviour. ``model``/``version`` select; ``last`` keeps only each
    version's newest rows (a live monitor reads a window, not the whole log)."""
    path = Path(path)
    if not path.is_file():
        raise EdgeftError(f"{path}: no such prediction log (serve --log {path} writes one)")
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        models = connection.execute(
            "SELECT model, version, labels, bundle, temperature FROM models"
        ).fetchall()
        feedback = dict(connection.execute("SELECT id, label FROM feedback").fetchall())
        out = []
        for name, number, labels, bundle, temperature in models:
            if model not in (None, name) or version not in (None, number):
                continue
            rows = connection.execute(
                "SELECT id, time, probabilities, statistics, embedding, input FROM predictions "
                "WHERE model = ? AND version = ? ORDER BY seq DESC LIMIT ?",
                (name, number, -1 if last is None else last),
            ).fetchall()[::-1]
            if rows:
                identity = ModelIdentity(name, number, json.loads(labels), bundle, temperature)
                out.append(_logged_version(identity, rows, feedback))
        connection.close()
    except sqlite3.DatabaseError as exc:
        raise EdgeftError(f"{path}: not a readable prediction log ({exc})") from exc
    return out


def read_notes(path: str | Path) -> list[tuple[float, str]]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return connection.execute("SELECT time, note FROM notes ORDER BY time").fetchall()
    finally:
        connection.close()


def _logged_version(
    model: ModelIdentity, rows: list[tuple], feedback: dict[str, str]
) -> LoggedVersion:
    statistics = [json.loads(r[3]) for r in rows]
    names = sorted({name for s in statistics for name in s})
    sketches = [r[4] for r in rows]
    return LoggedVersion(
        model=model.name,
        version=model.version,
        labels=model.labels,
        bundle=model.bundle,
        temperature=model.temperature,
        ids=[r[0] for r in rows],
        times=np.array([r[1] for r in rows], dtype=np.float64),
        probabilities=np.stack([np.frombuffer(r[2], dtype=np.float32) for r in rows]).astype(
            np.float64
        ),
        statistics={
            name: np.array(
                [np.nan if s.get(name) is None else s[name] for s in statistics], dtype=np.float64
            )
            for name in names
        },
        embedding=None
        if any(s is None for s in sketches)
        else np.stack([np.frombuffer(s, dtype=np.float32) for s in sketches]).astype(np.float64),
        inputs=[r[5] for r in rows],
        feedback={r[0]: feedback[r[0]] for r in rows if r[0] in feedback},
    )


@dataclass(frozen=True)
class KeptInput:
    id: str
    time: float
    model: str
    version: str
    label: str
    confidence: float
    file: Path


def latest_kept(path: str | Path, limit: int, below: float) -> list[KeptInput]:
    """The newest kept inputs with confidence under ``below``, newest first."""
    path = Path(path)
    inputs_dir = path.with_name(path.name + ".inputs")
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        rows = connection.execute(
            "SELECT p.id, p.time, p.model, p.version, p.predicted, p.confidence, p.input, m.labels "
            "FROM predictions p JOIN models m ON p.model = m.model AND p.version = m.version "
            "WHERE p.input IS NOT NULL AND p.confidence < ? ORDER BY p.seq DESC LIMIT ?",
            (below, limit),
        ).fetchall()
    finally:
        connection.close()
    return [
        KeptInput(i, t, m, v, json.loads(labels)[predicted], c, inputs_dir / name)
        for i, t, m, v, predicted, c, name, labels in rows
    ]

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
import math
import queue
import random
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from edgeft.bundle.labels import name_problem
from edgeft.errors import EdgeftError, shown
from edgeft.runtime.input_statistics import Statistics
from edgeft.runtime.task_predictor import TaskOutputs

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


def _schema_columns() -> dict[str, list[str]]:
    """Each table of ``SCHEMA`` and its columns, as SQLite itself reads the schema."""
    with closing(sqlite3.connect(":memory:")) as connection:
        connection.executescript(SCHEMA)
        return _tables(connection)


def _tables(connection: sqlite3.Connection) -> dict[str, list[str]]:
    """Every table and view but SQLite's own, with its column names."""
    rows = connection.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
    ).fetchall()
    return {
        name: [c[1] for c in connection.execute("SELECT * FROM pragma_table_info(?)", (name,))]
        for (name,) in rows
    }


SCHEMA_COLUMNS = _schema_columns()


def open_database(path: Path) -> sqlite3.Connection:
    """Create or open the log for writing, checked up front so that a server refuses to start
    on a log it could not keep, rather than serving while every record is dropped: a regular
    file, an SQLite database of this layout (a newer layout, or someone else's database, is
    refused rather than misread or written into) that can be written."""
    if path.is_dir():
        raise EdgeftError(f"{path}: not a usable prediction log: a folder")
    if path.exists() and not path.is_file():
        raise EdgeftError(f"{path}: not a usable prediction log: not a regular file")
    if not path.parent.is_dir():
        raise EdgeftError(f"{path}: cannot write the prediction log: no folder {path.parent}")
    with _refusing(path):
        connection = connect(path)
    with _refusing(path, connection):
        found = connection.execute("PRAGMA user_version").fetchone()[0]
        if found > USER_VERSION:
            raise EdgeftError(f"{path}: prediction log layout {found} is newer than this edgeft's")
        _check_tables(path, connection)
        connection.executescript(SCHEMA)
        connection.execute(f"PRAGMA user_version={USER_VERSION}")  # always a write: the check
    return connection


@contextmanager
def _refusing(path: Path, connection: sqlite3.Connection | None = None) -> Iterator[None]:
    """While opening ``path``: an SQLite error becomes one ``EdgeftError`` line, and any error
    closes ``connection``."""
    try:
        yield
    except Exception as exc:
        if connection is not None:
            connection.close()
        if isinstance(exc, sqlite3.Error | UnicodeDecodeError):
            raise EdgeftError(_open_failure(path, exc)) from exc
        raise


def _check_tables(path: Path, connection: sqlite3.Connection) -> None:
    """Tables of this log have its columns; a database holding other tables is not a log."""
    found = _tables(connection)
    foreign = sorted(set(found) - set(SCHEMA_COLUMNS))
    if foreign:
        raise EdgeftError(
            f"{path}: not a usable prediction log: it holds other tables ({shown(foreign)})"
        )
    for table, columns in found.items():
        if columns != SCHEMA_COLUMNS[table]:
            raise EdgeftError(
                f"{path}: not a usable prediction log: table {table} has columns "
                f"{shown(columns)}, not {shown(SCHEMA_COLUMNS[table])}"
            )


def _open_failure(path: Path, exc: sqlite3.Error | UnicodeDecodeError) -> str:
    """One line: the file is not a log SQLite can read, or it cannot be written here (a
    read-only disk or file, a missing permission, a full disk, another writer's lock)."""
    name = getattr(exc, "sqlite_errorname", "SQLITE_CORRUPT")  # not UTF-8: garbled bytes
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT", "SQLITE_FORMAT")):
        return f"{path}: not a usable prediction log: {exc}"
    return f"{path}: cannot write the prediction log: {exc}"


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
        with _refusing(self.path, self._connection):
            self._rows = self._connection.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
        self._input_bytes = sum(f.stat().st_size for f in self.inputs_dir.glob("*") if f.is_file())
        self._thread = threading.Thread(target=self._write_loop, name="edgeft-log", daemon=True)
        self._thread.start()

    def register(self, model: ModelIdentity) -> None:
        """Say which bundle a model version is (once per version), so the monitor can pair
        its rows with that bundle's reference."""
        with closing(connect(self.path)) as connection, connection:
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
        outputs: TaskOutputs,
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
        with closing(connect(self.path)) as connection, connection:
            row = connection.execute(
                "SELECT m.labels FROM predictions p JOIN models m "
                "ON p.model = m.model AND p.version = m.version WHERE p.id = ?",
                (prediction_id,),
            ).fetchone()
            if row is None:
                raise UnknownPrediction(f"no logged prediction has id {shown(prediction_id)}")
            try:
                labels = _labels(row[0])
            except _Damage as exc:
                raise EdgeftError(
                    f"{self.path}: the model of {shown(prediction_id)}: {exc}"
                ) from exc
            if label not in labels:
                raise EdgeftError(f"label {shown(label)} is not one of the model's {shown(labels)}")
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
    pixels: Image.Image = kept if isinstance(kept, Image.Image) else Image.fromarray(kept)
    buffer = io.BytesIO()
    pixels.save(buffer, format="PNG")
    return f"{prediction_id}.png", buffer.getvalue()


DAMAGE_SHOWN = 5  # damaged rows described per version; the others are only counted
SUM_TOLERANCE = 1e-3  # served probabilities are a softmax in float32


@dataclass
class LoggedVersion:
    """Every readable logged prediction of one model version, oldest first, as arrays.

    ``damaged`` counts the rows (predictions, or feedback on them) skipped because they could
    not be read, ``damage`` says what was wrong with the first few: one flipped byte should not
    blind a monitor to a million good rows, nor pass unnoticed."""

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
    damaged: int = 0
    damage: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


class _Damage(Exception):
    """What is wrong with one row; the reader skips and counts the row, or refuses the log."""


class _Undecodable(bytes):
    """TEXT that is not UTF-8, kept apart so that no check takes it for a string or a blob."""


def _text_factory(raw: bytes) -> str | _Undecodable:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _Undecodable(raw)


def _kind(value: object) -> str:
    return {
        type(None): "NULL",
        int: "an integer",
        float: "a number",
        str: "text",
        bytes: "a blob",
        _Undecodable: "text that is not UTF-8",
    }.get(type(value), type(value).__name__)


def _text(value: object, what: str) -> str:
    if type(value) is not str:
        raise _Damage(f"{what}: {_kind(value)}, not text")
    return value


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Damage(f"{what}: {_kind(value)} {shown(value)}, not a finite number")
    return float(value)


LATEST_TIME = 1e11  # seconds since 1970: the year 5138, and within every platform's time_t


def _time(value: object, otherwise: float | None = None) -> float:
    """A Unix time that can be printed as a date; ``otherwise`` in place of a damaged one."""
    try:
        when = _number(value, "time")
        if not 0 <= when <= LATEST_TIME:
            raise _Damage(f"time: {when}, not a Unix time from 1970 to the year 5138")
    except _Damage:
        if otherwise is None:
            raise
        return otherwise
    return when


def _floats(value: object, what: str, width: int | None = None) -> np.ndarray:
    """A float32 blob (``width`` values when given) as an array."""
    if type(value) is not bytes:
        raise _Damage(f"{what}: {_kind(value)}, not a blob")
    if len(value) % 4 or (width is not None and len(value) != 4 * width):
        expected = "whole float32 values" if width is None else f"{width} float32 values"
        raise _Damage(f"{what}: {len(value)} bytes, not {expected}")
    return np.frombuffer(value, dtype=np.float32)


def _json(value: object, what: str) -> Any:
    try:
        return json.loads(_text(value, what))
    except (ValueError, RecursionError) as exc:
        raise _Damage(f"{what}: not JSON ({shown(value)})") from exc


def _labels(value: object) -> list[str]:
    labels = _json(value, "labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise _Damage(f"labels: {shown(labels)}, not a list of texts")
    return labels


def _statistics(value: object) -> dict[str, float]:
    """Name -> value; NaN where unknown (logged as null)."""
    found = _json(value, "statistics")
    if not isinstance(found, dict):
        raise _Damage(f"statistics: {shown(found)}, not a JSON object")
    out = {}
    for name, number in found.items():
        if number is None or (type(number) is float and math.isnan(number)):
            out[name] = math.nan
            continue
        try:
            out[name] = _number(number, f"statistic {shown(name)}")
        except OverflowError as exc:  # an integer past float's range
            raise _Damage(f"statistic {shown(name)}: out of range") from exc
    return out


def _input_name(value: object) -> str | None:
    """A kept input's file name: one plain name inside ``LOG.inputs/``, never a path."""
    if value is None:
        return None
    problem = name_problem(value)
    if problem is not None or not isinstance(value, str):
        raise _Damage(f"kept input: {shown(value)} is not a file name ({problem})")
    return value


@contextmanager
def _reading(path: Path) -> Iterator[sqlite3.Connection]:
    """The log opened read-only; whatever SQLite refuses (no such table, a damaged page) is one
    ``EdgeftError`` naming the log."""
    if not path.is_file():
        raise EdgeftError(f"{path}: no such prediction log (serve --log {path} writes one)")
    try:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=10)) as connection:
            connection.text_factory = _text_factory
            yield connection
    except (sqlite3.Error, UnicodeDecodeError) as exc:
        # UnicodeDecodeError: SQLite's own message quoted damaged bytes (a garbled schema).
        raise EdgeftError(f"{path}: not a readable prediction log ({exc})") from exc


def read_log(
    path: str | Path, model: str | None = None, version: str | None = None, last: int | None = None
) -> list[LoggedVersion]:
    """The log, one entry per (model, version): never mixed, since each version has its own
    reference and its own behaviour. ``model``/``version`` select; ``last`` keeps only each
    version's newest rows (a live monitor reads a window, not the whole log).

    Damaged prediction rows are skipped and counted in their version; a damaged ``models`` row
    (without it no row of that version can be read) or table is an ``EdgeftError``."""
    path = Path(path)
    out = []
    with _reading(path) as connection:
        feedback = dict(connection.execute("SELECT id, label FROM feedback").fetchall())
        for identity in _registered(path, connection):
            if model not in (None, identity.name) or version not in (None, identity.version):
                continue
            rows = connection.execute(
                "SELECT seq, id, time, probabilities, statistics, embedding, input "
                "FROM predictions WHERE model = ? AND version = ? ORDER BY seq DESC LIMIT ?",
                (identity.name, identity.version, -1 if last is None else last),
            ).fetchall()[::-1]
            if rows:
                out.append(_logged_version(identity, rows, feedback))
    return out


def _registered(path: Path, connection: sqlite3.Connection) -> list[ModelIdentity]:
    """The ``models`` table, every row checked."""
    out = []
    for rowid, name, number, labels, bundle, temperature in connection.execute(
        "SELECT rowid, model, version, labels, bundle, temperature FROM models"
    ):
        try:
            if _number(temperature, "temperature") <= 0:
                raise _Damage(f"temperature: {temperature}, not positive")
            out.append(
                ModelIdentity(
                    _text(name, "model"),
                    _text(number, "version"),
                    _labels(labels),
                    _text(bundle, "bundle"),
                    float(temperature),
                )
            )
        except _Damage as exc:
            raise EdgeftError(f"{path}: models row {rowid}: {exc}") from exc
    return out


def read_notes(path: str | Path) -> list[tuple[float, str]]:
    """What the writer noted (why inputs stopped being kept), oldest first. A damaged note
    is listed as such, at the epoch when its time cannot be read."""
    notes = []
    with _reading(Path(path)) as connection:
        for rowid, when, note in connection.execute(
            "SELECT rowid, time, note FROM notes ORDER BY rowid"
        ):
            try:
                notes.append((_time(when), _text(note, "note")))
            except _Damage as exc:
                notes.append((_time(when, 0.0), f"note row {shown(rowid)} is damaged: {exc}"))
    return sorted(notes, key=lambda n: n[0])


class _Row(NamedTuple):
    seq: object
    id: str
    time: float
    probabilities: np.ndarray
    statistics: dict[str, float]
    embedding: np.ndarray | None
    input: str | None


def _logged_version(
    model: ModelIdentity, rows: list[tuple], feedback: dict[Any, Any]
) -> LoggedVersion:
    """One version's rows as arrays; rows that do not read are skipped and described."""
    classes = len(model.labels)
    damage: list[str] = []
    parsed: list[_Row] = []
    for seq, row_id, when, probabilities, statistics, embedding, name in rows:
        try:
            parsed.append(
                _Row(
                    seq,
                    _text(row_id, "id"),
                    _time(when),
                    _floats(probabilities, "probabilities", classes),
                    _statistics(statistics),
                    None if embedding is None else _floats(embedding, "embedding"),
                    _input_name(name),
                )
            )
        except _Damage as exc:
            damage.append(f"row {shown(seq)}: {exc}")
    good = _plausible(parsed, damage)
    answers = {}
    for row in good:
        label = feedback.get(row.id)
        if label is None:
            continue
        if isinstance(label, str) and label in model.labels:
            answers[row.id] = label
        else:
            damage.append(
                f"row {shown(row.seq)}: feedback: {shown(label)}, not one of the model's labels"
            )
    sketches = [r.embedding for r in good if r.embedding is not None]
    names = sorted({name for r in good for name in r.statistics})
    return LoggedVersion(
        model=model.name,
        version=model.version,
        labels=model.labels,
        bundle=model.bundle,
        temperature=model.temperature,
        ids=[r.id for r in good],
        times=np.array([r.time for r in good], dtype=np.float64),
        probabilities=np.array([r.probabilities for r in good], np.float64).reshape(-1, classes),
        statistics={
            name: np.array([r.statistics.get(name, math.nan) for r in good], dtype=np.float64)
            for name in names
        },
        embedding=np.stack(sketches).astype(np.float64)
        if good and len(sketches) == len(good)
        else None,
        inputs=[r.input for r in good],
        feedback=answers,
        damaged=len(damage),
        damage=damage[:DAMAGE_SHOWN],
    )


def _plausible(rows: list[_Row], damage: list[str]) -> list[_Row]:
    """The rows whose numbers can be what the server logged: probabilities that are a
    distribution, a finite embedding sketch as wide as most rows' (the projected features and
    the reconstruction error: two values at least). Checked on all rows at once."""
    if not rows:
        return rows
    probabilities = np.stack([r.probabilities for r in rows])
    with np.errstate(invalid="ignore", over="ignore"):
        bad = ~np.isfinite(probabilities).all(axis=1)
        bad |= (probabilities < 0).any(axis=1) | (probabilities > 1).any(axis=1)
        bad |= np.abs(probabilities.sum(axis=1, dtype=np.float64) - 1) > SUM_TOLERANCE
    why = {int(i): "probabilities: not a distribution" for i in np.flatnonzero(bad)}
    widths = Counter(len(r.embedding) for r in rows if r.embedding is not None)
    width = max(widths, key=widths.__getitem__, default=None)
    for i, row in enumerate(rows):
        if i in why or row.embedding is None:
            continue
        if len(row.embedding) != width or width < 2:
            why[i] = f"embedding: {len(row.embedding)} values, not {width} (most rows')"
        elif not np.isfinite(row.embedding).all():
            why[i] = "embedding: holds a NaN or an infinity"
    damage += [f"row {shown(rows[i].seq)}: {what}" for i, what in sorted(why.items())]
    return [r for i, r in enumerate(rows) if i not in why]


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
    """The newest kept inputs with confidence under ``below``, newest first. Damaged rows are
    skipped and counted in the server's log (``edgeft monitor`` reports them): these are the
    status page's thumbnails."""
    path = Path(path)
    inputs_dir = path.with_name(path.name + ".inputs")
    with _reading(path) as connection:
        rows = connection.execute(
            "SELECT p.seq, p.id, p.time, p.model, p.version, p.predicted, p.confidence, p.input, "
            "m.labels FROM predictions p JOIN models m "
            "ON p.model = m.model AND p.version = m.version "
            "WHERE p.input IS NOT NULL AND p.confidence < ? ORDER BY p.seq DESC LIMIT ?",
            (below, limit),
        ).fetchall()
    kept, damage = [], []
    for seq, row_id, when, model, version, predicted, confidence, name, labels in rows:
        try:
            classes = _labels(labels)
            if type(predicted) is not int or not 0 <= predicted < len(classes):
                raise _Damage(f"predicted: {shown(predicted)}, not a label's index")
            kept.append(
                KeptInput(
                    _text(row_id, "id"),
                    _time(when),
                    _text(model, "model"),
                    _text(version, "version"),
                    classes[predicted],
                    _number(confidence, "confidence"),
                    inputs_dir / str(_input_name(name)),
                )
            )
        except _Damage as exc:
            damage.append(f"row {shown(seq)}: {exc}")
    if damage:
        log.warning(
            "prediction log %s: %d damaged row(s) of kept inputs skipped (first: %s)",
            path,
            len(damage),
            damage[0],
        )
    return kept

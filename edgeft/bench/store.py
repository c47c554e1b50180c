"""The results database: every ``edgeft bench`` appends a run, so boxes can be compared.

A plain SQLite file (default in the user's data folder); one row per run with its host
fingerprint, one row per model and batch size with the statistics and the raw samples. SQLite's
``user_version`` holds the schema version, so a file a newer edgeft changed is refused rather than
misread; files from before versioning (0) have the version-1 tables and are stamped on opening.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from edgeft.bench.run import BenchmarkRun
from edgeft.errors import EdgeftError
from edgeft.home import edgeft_home

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    bundle TEXT NOT NULL,
    target TEXT NOT NULL,
    host TEXT NOT NULL,
    batches TEXT NOT NULL,
    duration_s REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    engine TEXT NOT NULL,
    precision TEXT NOT NULL,
    variant TEXT NOT NULL,
    batch INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    p50_ms REAL NOT NULL,
    p90_ms REAL NOT NULL,
    p99_ms REAL NOT NULL,
    mean_ms REAL NOT NULL,
    std_ms REAL NOT NULL,
    min_ms REAL NOT NULL,
    throughput_ips REAL NOT NULL,
    throughput_mode_ips REAL,
    cold_start_ms REAL,
    peak_rss_mb REAL,
    size_mb REAL NOT NULL,
    accuracy REAL,
    samples_ms TEXT NOT NULL
);
"""
# What results() returns per row: the run's facts joined to each model's statistics.
COLUMNS = (
    "run_id", "created", "target", "cpu", "bundle", "model", "engine", "precision", "variant",
    "batch", "calls", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms",
    "throughput_ips", "throughput_mode_ips", "cold_start_ms", "peak_rss_mb", "size_mb", "accuracy",
)  # fmt: skip


def default_db() -> Path:
    return edgeft_home() / "bench.sqlite"


class ResultsStore:
    """The results database at ``path``; ``timeout_s`` is how long to wait for another
    process's lock before giving up."""

    def __init__(self, path: str | Path | None = None, timeout_s: float = 5.0) -> None:
        self.path = Path(path) if path else default_db()
        self.timeout_s = timeout_s

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with closing(sqlite3.connect(self.path, timeout=self.timeout_s)) as connection:
                connection.row_factory = sqlite3.Row
                connection.execute("PRAGMA foreign_keys = ON")
                self._check_schema(connection)
                with connection:  # one transaction: a run is stored whole or not at all
                    yield connection
        except sqlite3.OperationalError as exc:  # locked, read-only, disk full...
            raise EdgeftError(f"{self.path}: could not use the results database ({exc})") from exc
        except sqlite3.DatabaseError as exc:
            raise EdgeftError(f"{self.path}: not a usable results database ({exc})") from exc

    def _check_schema(self, connection: sqlite3.Connection) -> None:
        """Refuse a newer schema; create the tables in a new file (or keep those of a file from
        before versioning, which are the same) and stamp the current version."""
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise EdgeftError(
                f"{self.path}: written by a newer edgeft (results schema {version}, this one "
                f"reads up to {SCHEMA_VERSION}); upgrade edgeft or give another --db"
            )
        if version < SCHEMA_VERSION:
            connection.executescript(
                f"BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            )

    def add(self, run: BenchmarkRun) -> int:
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO runs (created, bundle, target, host, batches, duration_s) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (run.created, run.bundle, run.target, json.dumps(run.host),
                 json.dumps(run.batches), run.duration_s),
            )  # fmt: skip
            run_id = int(cursor.lastrowid or 0)
            for model in run.models:
                for batch, stats in model.latency.items():
                    db.execute(
                        "INSERT INTO results VALUES "
                        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (run_id, model.label, model.engine, model.precision, model.variant, batch,
                         stats.calls, stats.p50_ms, stats.p90_ms, stats.p99_ms, stats.mean_ms,
                         stats.std_ms, stats.min_ms, stats.throughput, model.throughput_mode_ips,
                         model.cold_start_ms, model.peak_rss_mb, model.size_mb, model.accuracy,
                         json.dumps(model.samples_ms[batch])),
                    )  # fmt: skip
        return run_id

    def results(self, run_ids: Sequence[int] = (), samples: bool = False) -> list[dict[str, Any]]:
        """Rows of ``COLUMNS`` (plus ``samples_ms`` when asked), oldest run first."""
        where = f"WHERE r.id IN ({','.join('?' * len(run_ids))})" if run_ids else ""
        with self._connect() as db:
            rows = db.execute(
                "SELECT r.id AS run_id, r.created, r.target, r.host, r.bundle, s.* "
                f"FROM runs r JOIN results s ON s.run_id = r.id {where} "
                "ORDER BY r.id, s.rowid",
                tuple(run_ids),
            ).fetchall()
        out = []
        for row in rows:
            record = {
                key: json.loads(row["host"])["cpu"] if key == "cpu" else row[key] for key in COLUMNS
            }
            if samples:
                record["samples_ms"] = json.loads(row["samples_ms"])
            out.append(record)
        if run_ids and not out:
            raise EdgeftError(f"{self.path}: no runs with ids {', '.join(map(str, run_ids))}")
        return out

    def write_csv(self, path: Path) -> None:
        """Every stored row as CSV, written atomically."""
        from edgeft.atomic import write_text_atomically

        write_text_atomically(path, to_csv(self.results()))

    def runs(self) -> list[dict[str, Any]]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, created, target, bundle, host, "
                "(SELECT COUNT(*) FROM results WHERE run_id = runs.id) AS rows FROM runs ORDER BY id"
            ).fetchall()
        return [
            {"id": r["id"], "created": r["created"], "target": r["target"],
             "cpu": json.loads(r["host"])["cpu"], "bundle": r["bundle"], "rows": r["rows"]}
            for r in rows
        ]  # fmt: skip


def to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()

"""Aliases (``production``, ``candidate``, any name), their history, and the record of every
version pushed (its content hash; numbers are never reused), in one SQLite file.

SQLite gives what an alias file needs: a change is one transaction (all of it or none, durable
with ``synchronous=FULL``), readers never see half a write, and in WAL mode a server reading
the aliases never blocks a command writing them.
"""

from __future__ import annotations

import getpass
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edgeft.errors import EdgeftError

ALIASES_FILE = "aliases.sqlite"
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS aliases (
    model TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (model, alias)
);
CREATE TABLE IF NOT EXISTS pushed (
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    PRIMARY KEY (model, version)
);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    model TEXT NOT NULL,
    alias TEXT NOT NULL,
    action TEXT NOT NULL,
    from_version INTEGER,
    to_version INTEGER
);
"""


@dataclass(frozen=True)
class AliasChange:
    at: str
    who: str
    model: str
    alias: str
    action: str  # promote, rollback, remove
    from_version: int | None
    to_version: int | None


class AliasStore:
    """``REPO/aliases.sqlite``: which version each alias of each model points to."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            connection = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            connection.execute("PRAGMA synchronous = FULL")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise EdgeftError(
                    f"{self.path}: written by a newer edgeft (alias schema {version}); upgrade"
                )
            if version < SCHEMA_VERSION:  # WAL: a reading server never blocks a promote
                connection.execute("PRAGMA journal_mode = WAL")
                connection.executescript(_SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
        except sqlite3.DatabaseError as exc:
            raise EdgeftError(f"{self.path}: not a usable alias database ({exc})") from exc
        try:
            yield connection
        except sqlite3.DatabaseError as exc:
            raise EdgeftError(f"{self.path}: {exc}") from exc
        finally:
            connection.close()

    def aliases(self, model: str | None = None) -> dict[str, dict[str, int]]:
        """model -> alias -> version."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT model, alias, version FROM aliases"
                + (" WHERE model = ?" if model else "")
                + " ORDER BY model, alias",
                (model,) if model else (),
            ).fetchall()
        out: dict[str, dict[str, int]] = {}
        for name, alias, version in rows:
            out.setdefault(name, {})[alias] = version
        return out

    def get(self, model: str, alias: str) -> int | None:
        return self.aliases(model).get(model, {}).get(alias)

    def set(self, model: str, alias: str, version: int, action: str = "promote") -> int | None:
        """Point ``alias`` at ``version``; returns where it pointed before."""
        with self._connect() as db, _transaction(db):
            row = db.execute(
                "SELECT version FROM aliases WHERE model = ? AND alias = ?", (model, alias)
            ).fetchone()
            before = row[0] if row else None
            db.execute(
                "INSERT INTO aliases VALUES (?, ?, ?) ON CONFLICT (model, alias) "
                "DO UPDATE SET version = excluded.version",
                (model, alias, version),
            )
            _record(db, model, alias, action, before, version)
        return before

    def remove(self, model: str, alias: str) -> None:
        with self._connect() as db, _transaction(db):
            row = db.execute(
                "DELETE FROM aliases WHERE model = ? AND alias = ? RETURNING version",
                (model, alias),
            ).fetchone()
            if row is None:
                raise EdgeftError(f"model {model!r} has no alias {alias!r}")
            _record(db, model, alias, "remove", row[0], None)

    def reserve(self, model: str, above: int, manifest_sha256: str) -> int:
        """Record the next version number, above ``above`` (the highest folder) and above every
        number ever recorded, before its folder exists: two pushes never take one number, and a
        push cut short leaves its number taken rather than a version without a record."""
        with self._connect() as db, _transaction(db):
            (highest,) = db.execute(
                "SELECT MAX(version) FROM pushed WHERE model = ?", (model,)
            ).fetchone()
            number = max(above, highest or 0) + 1
            db.execute(
                "INSERT INTO pushed VALUES (?, ?, ?, ?, ?)",
                (model, number, manifest_sha256, _now(), _who()),
            )
        return number

    def record_push(self, model: str, version: int, manifest_sha256: str) -> None:
        """Record a version found without a record (a push of an older edgeft cut short), so
        its number stays taken once the folder is gone; a recorded version keeps its record."""
        with self._connect() as db, _transaction(db):
            db.execute(
                "INSERT OR IGNORE INTO pushed VALUES (?, ?, ?, ?, ?)",
                (model, version, manifest_sha256, _now(), _who()),
            )

    def pushed(self, model: str) -> dict[int, str]:
        """version -> the manifest sha256 recorded when it was pushed."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT version, manifest_sha256 FROM pushed WHERE model = ?", (model,)
            ).fetchall()
        return dict(rows)

    def history(self, model: str) -> list[AliasChange]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT at, who, model, alias, action, from_version, to_version FROM history "
                "WHERE model = ? ORDER BY id",
                (model,),
            ).fetchall()
        return [AliasChange(*row) for row in rows]

    def previous(self, model: str, alias: str) -> int | None:
        """The version ``alias`` pointed to before it moved to where it is now."""
        current = self.get(model, alias)
        for change in reversed(self.history(model)):
            if change.alias == alias and change.to_version == current and change.action != "remove":
                return change.from_version
        return None


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _record(
    db: sqlite3.Connection,
    model: str,
    alias: str,
    action: str,
    before: int | None,
    after: int | None,
) -> None:
    db.execute(
        "INSERT INTO history (at, who, model, alias, action, from_version, to_version) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (_now(), _who(), model, alias, action, before, after),
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"

"""The one rule for what may name a model or a version of a repository.

A model name becomes a folder at the repository's root and a version a folder inside it, so a
name must be one plain path segment that cannot climb out (``..``, ``/``, an absolute path) or
land on a file the repository keeps for itself: SQLite writes ``-wal``, ``-shm`` and
``-journal`` files beside the alias database, and a root holding a manifest reads as a bundle.
Every ``ModelRepository`` method checks its arguments here, so the CLI and the server inherit
one rule.
"""

from __future__ import annotations

import re

from edgeft.bundle import MANIFEST_NAME
from edgeft.errors import EdgeftError, shown
from edgeft.repository.aliases import ALIASES_FILE

MAX_NAME_LENGTH = 64
# Names the repository keeps at its root; every name starting with one (case folded, for
# case-insensitive filesystems) is theirs: SQLite's companions of the alias database included.
RESERVED_PREFIXES: tuple[str, ...] = (ALIASES_FILE, MANIFEST_NAME)
_SHAPE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NAME_LENGTH - 1}}}")


class RepositoryNameError(EdgeftError):
    """A model name or version number the repository refuses."""


def is_model_name(name: object) -> bool:
    """Whether a folder at the root is a model's (listing skips anything else, never fails)."""
    return isinstance(name, str) and _refusal(name) is None


def check_model_name(name: object) -> str:
    """``name`` if the repository may store a model under it, else ``RepositoryNameError``."""
    if not isinstance(name, str):
        raise RepositoryNameError(f"model name {shown(name)} is not a string")
    why = _refusal(name)
    if why is not None:
        raise RepositoryNameError(f"model name {shown(name)} {why}")
    return name


def check_version(version: object) -> int:
    """``version`` if it can number a version (1, 2, 3...), else ``RepositoryNameError``."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RepositoryNameError(f"version {shown(version)}: versions are whole numbers from 1")
    return version


def version_of_folder(name: str) -> int | None:
    """The version a folder named ``name`` holds: only the name ``str(version)`` gives, so
    ``07``, ``0`` or a non-ASCII digit (``int`` reads ``'٣'`` as 3) is never a second 7 or 3."""
    if name.isascii() and name.isdigit() and name == str(int(name)) and int(name) >= 1:
        return int(name)
    return None


def _refusal(name: str) -> str | None:
    if not _SHAPE.fullmatch(name):  # fullmatch: "$" would let a trailing newline through
        return (
            f"is not 1-{MAX_NAME_LENGTH} letters, digits, '.', '_' or '-' "
            "starting with a letter or digit"
        )
    for reserved in RESERVED_PREFIXES:
        if name.casefold().startswith(reserved.casefold()):
            return f"is taken by the repository's own {reserved} files"
    return None

"""Replacing a file so that a crash or power cut leaves the old file or the new, never a part.

The new content goes to a hidden sibling, is flushed to disk, renamed over the target, and the
folder's entry is flushed too (POSIX: a rename is durable only once its directory is synced).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(temporary)`` fills a sibling file, which then replaces ``path`` durably."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(temporary)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def write_text_atomically(path: Path, text: str) -> None:
    replace_atomically(path, lambda t: t.write_text(text, encoding="utf-8"))


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (renames, new files); a no-op where folders cannot be opened."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

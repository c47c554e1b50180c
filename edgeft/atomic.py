"""Replacing a file or a folder so that a crash or power cut leaves the old or the new, never a part.

Files: the new content goes to a hidden sibling, is flushed to disk, renamed over the target, and
the folder's entry is flushed too (POSIX: a rename is durable only once its directory is synced).

Folders (bundles): every file and folder of the new one is flushed, then the two are exchanged in
one step where the kernel can (Linux ``renameat2(RENAME_EXCHANGE)``). Elsewhere the old folder is
renamed aside to ``.<name>.old`` first; a crash between the two renames leaves the path empty and
the complete old folder aside, which ``recover_folder`` (run by every load) puts back.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger("edgeft")

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """``write(temporary)`` fills a sibling file, which then replaces ``path`` durably."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(temporary)
        _sync_file(temporary)
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


def _sync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def sync_tree(root: Path) -> None:
    """Flush every file, then every folder (deepest first), so the whole tree is on disk."""
    folders = [root]
    for parent, subfolders, files in os.walk(root):
        for name in files:
            _sync_file(Path(parent, name))
        folders += [Path(parent, name) for name in subfolders]
    for folder in reversed(folders):
        sync_folder(folder)


def staging_folder(out: Path) -> Path:
    """An empty hidden sibling of ``out`` to build its replacement in; the name carries this
    process's id, so a writer killed half-way leaves a folder the next writer can tell is stale."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-{os.getpid()}-", dir=out.parent))


@contextlib.contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """Yield an empty staging sibling of ``out`` (which must not exist yet) to fill; on success
    it is flushed and renamed to ``out``, on any error or interrupt removed, so a half-written
    folder never sits where data should be."""
    staging = staging_folder(out)
    try:
        yield staging
        sync_tree(staging)
        os.rename(staging, out)
        sync_folder(out.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_folder(staging: Path, out: Path) -> None:
    """Make the complete folder ``staging`` the folder at ``out``, durably; at every instant
    ``out`` is the old or the new folder, or (only where no exchange exists, and only until the
    next ``recover_folder``) empty with the old one at ``.<name>.old``."""
    sync_tree(staging)
    aside = out.with_name(f".{out.name}.old")
    with _folder_lock(out.parent):
        _finish_interrupted_swap(out)
        if not out.exists():
            os.rename(staging, out)
        elif _exchange(staging, out):
            os.rename(staging, aside)  # staging now holds the old folder
        else:
            os.rename(out, aside)
            sync_folder(out.parent)
            os.rename(staging, out)
        sync_folder(out.parent)
        trash = _discard(aside)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def recover_folder(out: Path) -> bool:
    """Put back the folder an interrupted ``replace_folder`` left aside; True if it did."""
    aside = out.with_name(f".{out.name}.old")
    if out.exists() or not aside.is_dir():
        return False
    try:
        with _folder_lock(out.parent):
            restored = _finish_interrupted_swap(out)
    except OSError:  # a read-only location: nothing can be put back
        return False
    if restored:
        log.warning("%s: an interrupted write had left it aside; the previous copy is back", out)
    return restored


def _finish_interrupted_swap(out: Path) -> bool:
    """Under the lock: roll back a swap cut short, and clear what killed writers left."""
    aside = out.with_name(f".{out.name}.old")
    restored = False
    if not out.exists() and aside.is_dir():
        os.rename(aside, out)
        sync_folder(out.parent)
        restored = True
    for leftover in out.parent.glob(f".{out.name}.*"):
        if leftover.is_dir() and _is_stale(leftover.name[len(out.name) + 2 :]):
            shutil.rmtree(leftover, ignore_errors=True)
    return restored


def _is_stale(suffix: str) -> bool:
    """``old`` (the swap finished), ``trash-*``, or ``partial-<pid>-*`` of a process now gone."""
    kind, _, rest = suffix.partition("-")
    if kind in ("old", "trash"):
        return True
    if kind != "partial":
        return False
    pid = rest.partition("-")[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _discard(aside: Path) -> Path | None:
    """Rename the old folder to a trash name (never mistaken for a copy to restore)."""
    if not aside.exists():
        return None
    trash = aside.with_name(aside.name.replace(".old", f".trash-{os.getpid()}", 1))
    os.rename(aside, trash)
    return trash


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step; False where the kernel, libc or filesystem cannot."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: fall back to two renames
        return False
    raise OSError(errno, os.strerror(errno), str(b))


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """One swap at a time in ``folder`` (an advisory lock on the folder itself, no lock file)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: swaps are not serialised
        yield
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)

"""``REPO/<model>/<version>/``: one complete bundle per numbered version, never changed once
written, and ``REPO/aliases.sqlite`` naming versions.

A version is staged in a hidden folder and renamed to its number only when complete, so a
server or a lister never sees a half-written version (what makes Triton's POLL mode unsafe);
folders that are not a number holding a manifest are ignored. Its number and manifest hash are
recorded before the rename, so a number is never reused and a version is served only while it
is what was pushed. A push locks its staging folder until it ends; the next write deletes the
staging folders no live process holds (a push killed half-way) and versions a removal cut short
had renamed aside.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edgeft.atomic import staging_folder, sync_folder, sync_tree
from edgeft.bundle import MANIFEST_NAME, Bundle, sha256_file
from edgeft.errors import BundleError, EdgeftError
from edgeft.repository.aliases import ALIASES_FILE, AliasChange, AliasStore
from edgeft.repository.names import (
    check_model_name,
    check_version,
    is_model_name,
    version_of_folder,
)

PRODUCTION = "production"
_STAGING = "next"  # a push stages in ``<model>/.next.partial-<pid>-<random>/``
_REMOVED = ".removed"  # a removal renames ``<model>/<n>/`` to ``<model>/.<n>.removed/`` first
# A staging folder is locked just after it is created: one younger than this may be a live
# push's that is not locked yet, so it is never taken for abandoned.
STAGING_GRACE_S = 60.0


class VersionIntegrityError(EdgeftError):
    """A version that is not what was pushed: changed since, or never recorded by a push."""


def is_repository(path: Path) -> bool:
    return (path / ALIASES_FILE).is_file() and not (path / MANIFEST_NAME).exists()


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: int
    path: Path

    @property
    def manifest_sha256(self) -> str:
        """The manifest lists every file's hash, so its own hash names the whole content (read
        when asked: a server resolving aliases every second does not hash every version)."""
        return sha256_file(self.path / MANIFEST_NAME)


@dataclass(frozen=True)
class VersionListing:
    """One row of ``edgeft repo list``: a version, the aliases on it and its content hash."""

    model: str
    version: int
    aliases: list[str]
    manifest_sha256: str


class ModelRepository:
    """A folder of models, each a set of numbered bundle versions, with aliases. Every method
    taking a model name or a version checks it (``edgeft.repository.names``) before it becomes
    a path."""

    def __init__(self, root: str | Path, create: bool = False) -> None:
        self.root = Path(root)
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        elif not self.root.is_dir():
            raise EdgeftError(f"{self.root}: no such repository folder")
        if (self.root / MANIFEST_NAME).exists():
            raise EdgeftError(f"{self.root} is a bundle, not a repository")
        self.aliases = AliasStore(self.root / ALIASES_FILE)
        if create:
            self.aliases.aliases()  # creates the database

    def models(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and is_model_name(p.name))

    def versions(self, model: str) -> list[ModelVersion]:
        folder = self.root / check_model_name(model)
        if not folder.is_dir():
            return []
        found = [
            ModelVersion(model, number, p)
            for p in folder.iterdir()
            if (number := version_of_folder(p.name)) is not None and (p / MANIFEST_NAME).is_file()
        ]
        return sorted(found, key=lambda v: v.version)

    def listing(self) -> list[VersionListing]:
        """Every version of every model, with the aliases pointing at it."""
        aliases = self.aliases.aliases()
        return [
            VersionListing(
                model=name,
                version=v.version,
                aliases=sorted(a for a, n in aliases.get(name, {}).items() if n == v.version),
                manifest_sha256=v.manifest_sha256,
            )
            for name in self.models()
            for v in self.versions(name)
        ]

    def version(self, model: str, version: int) -> ModelVersion:
        """The version, refused unless its manifest's sha256 is the one its push recorded (the
        manifest hashes every file, which loading the bundle checks): a version rewritten
        whole, manifest and all, is never promoted, rolled back to or served."""
        found = self._find(model, version)
        recorded = self.aliases.pushed(model).get(version)
        if recorded is None:
            raise VersionIntegrityError(
                f"model {model!r} version {version} has no push record in {ALIASES_FILE} "
                "(it was not written by `edgeft repo push`); push the bundle again"
            )
        actual = found.manifest_sha256
        if actual != recorded:
            raise VersionIntegrityError(
                f"model {model!r} version {version} changed after it was pushed: its manifest "
                f"sha256 is {actual[:12]}..., the push recorded {recorded[:12]}...; push the "
                "bundle again"
            )
        return found

    def resolve(self, model: str, alias: str = PRODUCTION) -> ModelVersion:
        """The version ``alias`` points to; without the alias, the newest pushed (OVMS's
        default; a folder no push recorded is never picked)."""
        pointed = self.aliases.get(check_model_name(model), alias)
        if pointed is None:
            recorded = self.aliases.pushed(model)
            pushed = [v.version for v in self.versions(model) if v.version in recorded]
            if not pushed:
                raise EdgeftError(f"{self.root}: no model {model!r}")
            pointed = pushed[-1]
        return self.version(model, pointed)

    def history(self, model: str) -> list[AliasChange]:
        """Every alias change of ``model``, oldest first."""
        return self.aliases.history(check_model_name(model))

    def push(
        self, bundle: str | Path, name: str | None = None, validate: bool = True
    ) -> ModelVersion:
        """Copy a verified bundle in as the model's next version. With ``validate`` (and an
        acceptance set in the bundle), ``edgeft validate`` must pass on this host first."""
        name = check_model_name(Path(bundle).resolve().name if name is None else name)
        loaded = Bundle.load(bundle)  # refuses tampered or half-written bundles
        if validate and loaded.manifest.acceptance is not None:
            from edgeft.runtime.validation import validate_bundle

            failures = validate_bundle(loaded).failures()
            if failures:
                raise EdgeftError(f"{bundle} fails validation on this host: {'; '.join(failures)}")
        self._clear_leftovers()
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        staging = staging_folder(folder / _STAGING)
        try:
            with _held(staging):
                for rel in [*loaded.manifest.files, MANIFEST_NAME]:
                    target = staging / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(loaded.path_of(rel), target)
                Bundle.load(staging)  # the copy is complete and matches its hashes
                sync_tree(staging)
                number = self._claim_next(name, folder, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self.version(name, number)

    def _claim_next(self, name: str, folder: Path, staging: Path) -> int:
        """Rename ``staging`` to the next number never used, recorded with its hash first (see
        ``AliasStore.reserve``); a rename onto an existing folder (one no push recorded) fails,
        and the next number is tried."""
        manifest_sha256 = sha256_file(staging / MANIFEST_NAME)
        while True:
            numbers = (version_of_folder(p.name) for p in folder.iterdir())
            highest = max((n for n in numbers if n is not None), default=0)
            number = self.aliases.reserve(name, highest, manifest_sha256)
            try:
                staging.rename(folder / str(number))
            except OSError:
                if (folder / str(number)).exists():
                    continue
                raise
            sync_folder(folder)
            return number

    def promote(self, model: str, version: int, alias: str = PRODUCTION) -> int | None:
        """Point ``alias`` at a version that is what was pushed and loads; returns the previous
        version."""
        target = self.version(model, version)
        try:
            Bundle.load(target.path)
        except BundleError as exc:
            raise EdgeftError(f"{model} version {version} is damaged: {exc}") from exc
        self._clear_leftovers()
        return self.aliases.set(model, alias, version)

    def rollback(self, model: str, alias: str = PRODUCTION) -> int:
        """Move ``alias`` back to where it pointed before its last move, if that version is
        still what was pushed."""
        previous = self.aliases.previous(check_model_name(model), alias)
        if previous is None:
            raise EdgeftError(f"model {model!r}: {alias} has no previous version to go back to")
        self.version(model, previous)
        self._clear_leftovers()
        self.aliases.set(model, alias, previous, action="rollback")
        return previous

    def remove(self, model: str, version: int) -> None:
        """Delete a version no alias points to (a damaged one too: it is not checked); its
        number stays taken."""
        target = self._find(model, version)
        pointing = [
            a for a, v in self.aliases.aliases(model).get(model, {}).items() if v == version
        ]
        if pointing:
            raise EdgeftError(
                f"{model} version {version} is what {', '.join(pointing)} points to; "
                "promote another version first"
            )
        self._clear_leftovers()
        self.aliases.record_push(model, version, target.manifest_sha256)
        trash = target.path.with_name(f".{version}{_REMOVED}")
        target.path.rename(trash)  # gone from the listing at once, then deleted
        sync_folder(target.path.parent)
        shutil.rmtree(trash, ignore_errors=True)

    def _find(self, model: str, version: int) -> ModelVersion:
        """The version's folder, unchecked against its record."""
        check_version(version)
        versions = self.versions(model)
        for candidate in versions:
            if candidate.version == version:
                return candidate
        have = ", ".join(str(v.version) for v in versions) or "none"
        raise EdgeftError(f"model {model!r} has no version {version} (has: {have})")

    def _clear_leftovers(self) -> None:
        """Delete what killed writers left in the model folders: staging folders no live push
        holds, and versions a removal had renamed aside before it was cut short."""
        for model in self.models():
            for leftover in (self.root / model).glob(".*"):
                if leftover.name.startswith(f".{_STAGING}.partial-"):
                    _delete_if_abandoned(leftover)
                elif leftover.name.endswith(_REMOVED) and leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def _held(staging: Path) -> Iterator[None]:
    """An exclusive lock on ``staging`` while a push fills it: the kernel drops it when the
    process ends however it ends, so an unlocked staging folder is one nobody is writing
    (unlike a pid in its name, which another process, or another container's, may reuse)."""
    descriptor = _locked(staging, wait=True)
    try:
        yield
    finally:
        if descriptor is not None:
            os.close(descriptor)


def _delete_if_abandoned(staging: Path) -> None:
    """Delete a staging folder older than ``STAGING_GRACE_S`` that no process holds (locked
    while deleting, so a push cannot take it meanwhile)."""
    try:
        if time.time() - staging.stat().st_mtime < STAGING_GRACE_S:
            return
        descriptor = _locked(staging, wait=False)
    except OSError:  # gone already, or not a folder this process may open
        return
    if descriptor is not None:
        try:
            shutil.rmtree(staging, ignore_errors=True)
        finally:
            os.close(descriptor)


def _locked(folder: Path, wait: bool) -> int | None:
    """An open descriptor of ``folder`` holding an exclusive advisory lock; None when another
    process holds it, or where there are no such locks (not POSIX, a filesystem without
    ``flock``): there a staging folder is never taken for abandoned."""
    try:
        import fcntl
    except ImportError:
        return None
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:  # BlockingIOError: held by another process
        os.close(descriptor)
        return None
    return descriptor

"""``REPO/<model>/<version>/``: one complete bundle per numbered version, never changed once
written, and ``REPO/aliases.sqlite`` naming versions.

A version is staged in a hidden folder and renamed to its number only when complete, so a
server or a lister never sees a half-written version (what makes Triton's POLL mode unsafe);
folders that are not a number holding a manifest are ignored.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgeft.atomic import staging_folder, sync_folder, sync_tree
from edgeft.bundle import MANIFEST_NAME, Bundle, sha256_file
from edgeft.errors import BundleError, EdgeftError
from edgeft.repository.aliases import AliasStore

ALIASES_FILE = "aliases.sqlite"
PRODUCTION = "production"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


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


class ModelRepository:
    """A folder of models, each a set of numbered bundle versions, with aliases."""

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
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME.match(p.name))

    def versions(self, model: str) -> list[ModelVersion]:
        folder = self.root / model
        if not folder.is_dir():
            return []
        found = [
            ModelVersion(model, int(p.name), p)
            for p in folder.iterdir()
            if p.name.isdigit() and (p / MANIFEST_NAME).is_file()
        ]
        return sorted(found, key=lambda v: v.version)

    def version(self, model: str, version: int) -> ModelVersion:
        for candidate in self.versions(model):
            if candidate.version == version:
                return candidate
        have = ", ".join(str(v.version) for v in self.versions(model)) or "none"
        raise EdgeftError(f"model {model!r} has no version {version} (has: {have})")

    def resolve(self, model: str, alias: str = PRODUCTION) -> ModelVersion:
        """The version ``alias`` points to; without the alias, the newest (OVMS's default)."""
        pointed = self.aliases.get(model, alias)
        if pointed is not None:
            return self.version(model, pointed)
        versions = self.versions(model)
        if not versions:
            raise EdgeftError(f"{self.root}: no model {model!r}")
        return versions[-1]

    def push(
        self, bundle: str | Path, name: str | None = None, validate: bool = True
    ) -> ModelVersion:
        """Copy a verified bundle in as the model's next version. With ``validate`` (and an
        acceptance set in the bundle), ``edgeft validate`` must pass on this host first."""
        loaded = Bundle.load(bundle)  # refuses tampered or half-written bundles
        if validate and loaded.manifest.acceptance is not None:
            from edgeft.runtime.validation import validate_bundle

            failures = validate_bundle(loaded).failures()
            if failures:
                raise EdgeftError(f"{bundle} fails validation on this host: {'; '.join(failures)}")
        name = name or loaded.root.resolve().name
        if not _NAME.match(name):
            raise EdgeftError(f"model name {name!r}: use letters, digits, '-', '_' or '.'")
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        staging = staging_folder(folder / "next")
        try:
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
        version = self.version(name, number)
        self.aliases.record_push(name, number, version.manifest_sha256)
        return version

    def _claim_next(self, name: str, folder: Path, staging: Path) -> int:
        """Rename ``staging`` to the next number never used (removed versions' included); a
        rename onto an existing folder fails, so two pushes at once take different numbers."""
        while True:
            taken = [int(p.name) for p in folder.iterdir() if p.name.isdigit()]
            number = max([*taken, self.aliases.highest_pushed(name)], default=0) + 1
            try:
                staging.rename(folder / str(number))
            except OSError:
                if (folder / str(number)).exists():
                    continue  # another push took it
                raise
            sync_folder(folder)
            return number

    def promote(self, model: str, version: int, alias: str = PRODUCTION) -> int | None:
        """Point ``alias`` at a version that exists and loads; returns the previous version."""
        target = self.version(model, version)
        try:
            Bundle.load(target.path)
        except BundleError as exc:
            raise EdgeftError(f"{model} version {version} is damaged: {exc}") from exc
        return self.aliases.set(model, alias, version)

    def rollback(self, model: str, alias: str = PRODUCTION) -> int:
        """Move ``alias`` back to where it pointed before its last move."""
        previous = self.aliases.previous(model, alias)
        if previous is None:
            raise EdgeftError(f"model {model!r}: {alias} has no previous version to go back to")
        self.version(model, previous)
        self.aliases.set(model, alias, previous, action="rollback")
        return previous

    def remove(self, model: str, version: int) -> None:
        """Delete a version no alias points to."""
        target = self.version(model, version)
        pointing = [
            a for a, v in self.aliases.aliases(model).get(model, {}).items() if v == version
        ]
        if pointing:
            raise EdgeftError(
                f"{model} version {version} is what {', '.join(pointing)} points to; "
                "promote another version first"
            )
        trash = target.path.with_name(f".{version}.removed")
        target.path.rename(trash)  # gone from the listing at once, then deleted
        sync_folder(target.path.parent)
        shutil.rmtree(trash, ignore_errors=True)

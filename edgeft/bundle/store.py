"""Writing a bundle atomically and loading it with its hashes checked.

A bundle is staged in a hidden sibling folder and swapped into place only once every file is
written, hashed and flushed to disk (``edgeft.atomic.replace_folder``), so an interrupted export
or a power cut never leaves a broken bundle where a good one was.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edgeft.atomic import recover_folder, replace_folder, staging_folder
from edgeft.bundle.manifest import MANIFEST_NAME, Manifest, ModelEntry
from edgeft.errors import BundleError

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def model_files(path: Path) -> list[Path]:
    """A model file and its side files: an OpenVINO IR's weights sit in the ``.bin`` beside it."""
    return [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]


@dataclass(frozen=True)
class Bundle:
    """A bundle folder whose manifest parsed and whose files matched their hashes."""

    root: Path
    manifest: Manifest

    def path_of(self, entry: ModelEntry | str) -> Path:
        return self.root / (entry.path if isinstance(entry, ModelEntry) else entry)

    def size_of(self, entry: ModelEntry) -> int:
        """Bytes on disk of a model and its side files (an IR's ``.bin``): what the box stores."""
        return sum(f.stat().st_size for f in model_files(self.path_of(entry)))

    @property
    def fingerprint(self) -> str:
        """sha256 of the manifest, which hashes every file: the same bundle wherever it sits
        (a repository version, a copy on another box)."""
        return sha256_file(self.root / MANIFEST_NAME)

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> Bundle:
        """Read ``edgeft.json``; with ``verify``, refuse missing or changed files. A bundle left
        aside by a write cut short (a crash, a power cut) is put back first."""
        root = Path(path)
        if not root.is_dir() and not recover_folder(root):
            raise BundleError(f"{root}: no such bundle folder")
        manifest_path = root / MANIFEST_NAME
        if not manifest_path.is_file():
            raise BundleError(
                f"{root}: not a bundle (no {MANIFEST_NAME}); it may be half-written or another folder"
            )
        try:
            data = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{manifest_path}: manifest is not valid JSON ({exc})") from exc
        manifest = Manifest.from_dict(data)
        bundle = cls(root=root, manifest=manifest)
        if verify:
            bundle.verify()
        return bundle

    def verify(self) -> None:
        """Check every listed file exists and has the recorded sha256."""
        for rel, expected in self.manifest.files.items():
            file = self.root / rel
            if not _inside(self.root, file):
                raise BundleError(f"{self.root}: manifest lists {rel!r}, outside the bundle")
            if not file.is_file():
                raise BundleError(f"{self.root}: {rel} is missing (half-written or damaged bundle)")
            actual = sha256_file(file)
            if actual != expected:
                raise BundleError(
                    f"{self.root}: {rel} does not match its sha256 in {MANIFEST_NAME} "
                    f"(expected {expected[:12]}..., found {actual[:12]}...): the file was changed"
                )


def _inside(root: Path, file: Path) -> bool:
    return file.resolve().is_relative_to(root.resolve())


@contextmanager
def stage_bundle(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder; on clean exit it must hold ``edgeft.json`` and replaces
    ``out``. On error the staging folder is deleted and ``out`` is left exactly as it was."""
    out = Path(out)
    recover_folder(out)
    if out.exists() and not overwrite:
        raise BundleError(f"{out} already exists; choose another --out or pass --overwrite")
    staging = staging_folder(out)
    try:
        yield staging
        if not (staging / MANIFEST_NAME).is_file():
            raise BundleError(f"internal: staged bundle for {out} has no {MANIFEST_NAME}")
        replace_folder(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def copy_bundle_files(bundle: Bundle, staging: Path, keep: list[ModelEntry]) -> None:
    """Every file of ``bundle`` into ``staging`` but those of the models not in ``keep`` (their
    model files and recorded outputs): the start of a bundle derived from another."""
    dropped = {
        file.as_posix()
        for m in bundle.manifest.models
        if m not in keep
        for file in [
            *model_files(Path(m.path)),
            *([Path(m.reference_outputs)] if m.reference_outputs else []),
        ]
    }
    for rel in bundle.manifest.files:
        if rel not in dropped:
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(bundle.path_of(rel), target)


def write_manifest(staging: Path, manifest: Manifest) -> Manifest:
    """Hash every file in ``staging`` into the manifest and write ``edgeft.json``."""
    files = {}
    for file in sorted(p for p in staging.rglob("*") if p.is_file()):
        rel = file.relative_to(staging).as_posix()
        if rel != MANIFEST_NAME:
            files[rel] = sha256_file(file)
    manifest.files = files
    Manifest.from_dict(manifest.to_dict())  # refuse to write what could not be read back
    text = json.dumps(manifest.to_dict(), indent=2, sort_keys=False)
    (staging / MANIFEST_NAME).write_text(text + "\n", encoding="utf-8")
    return manifest

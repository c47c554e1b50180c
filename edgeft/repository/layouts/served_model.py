"""What each serving engine's writer is given: the models laid out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeft.bundle import Manifest, ModelEntry


@dataclass(frozen=True)
class ServedModel:
    """One model as laid out: its name, version, the bundle entry shipped and its manifest."""

    name: str
    version: int
    entry: ModelEntry
    manifest: Manifest


Writer = Callable[[Path, list[ServedModel]], None]

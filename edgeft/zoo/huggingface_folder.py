"""A local Hugging Face model folder: found, checked and described the same way for text and images.

Loading is offline only: ``local_files_only`` and ``HF_HUB_OFFLINE`` are always set. Which kind of
model a folder holds comes from its ``config.json`` ``model_type``, looked up in transformers' own
task mappings.
"""

from __future__ import annotations

import json
import os
from abc import abstractmethod
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from torch import nn
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
    MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
)

from edgeft.bundle import sha256_file
from edgeft.errors import EdgeftError
from edgeft.packaged import PackagedFile
from edgeft.zoo.base import ZooModel
from edgeft.zoo.layer_groups import architecture_groups
from edgeft.zoo.network import LayerGroup

CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def folder_task(folder: Path) -> str:
    """``image-classification`` or ``text-classification``, from the folder's model type."""
    model_type = read_config(folder).get("model_type")
    if model_type in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES:
        return "image-classification"
    if model_type in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES:
        return "text-classification"
    raise EdgeftError(
        f"{folder}: model_type {model_type!r} is neither an image classifier nor a text encoder "
        "transformers knows"
    )


def read_config(folder: Path) -> dict[str, Any]:
    file = folder / CONFIG_FILE
    if not file.is_file():
        raise EdgeftError(f"{folder}: not a Hugging Face model folder (no {CONFIG_FILE})")
    try:
        config = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdgeftError(f"{file}: not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise EdgeftError(f"{file}: expected a JSON object")
    return config


class HuggingFaceFolderModel(ZooModel):
    """A model whose architecture and weights are a local folder; ``needs`` names the files
    beyond ``config.json`` that the task reads (a tokenizer)."""

    needs: tuple[str, ...] = ()

    def __init__(self, name: str, folder: PackagedFile | Path, description: str = "") -> None:
        self.name = name
        self.folder = folder
        self.description = description or f"Hugging Face {self.task} model at {folder}"

    @property
    def weights_source(self) -> str:
        return self.folder.pip_spec if isinstance(self.folder, PackagedFile) else str(self.folder)

    def path(self) -> Path:
        folder = self.folder.path() if isinstance(self.folder, PackagedFile) else Path(self.folder)
        read_config(folder)
        for name in self.needs:
            if not (folder / name).is_file():
                raise EdgeftError(f"{folder}: no {name} (edgeft needs a fast tokenizer file)")
        return folder

    def weights_file(self) -> Path:
        folder = self.path()
        found = [folder / name for name in WEIGHT_FILES if (folder / name).is_file()]
        if not found:
            raise EdgeftError(f"{folder}: no weights ({' or '.join(WEIGHT_FILES)})")
        return found[0]

    def check(self) -> None:
        """Load the weights once, so a folder whose weights do not fit its config fails here."""
        self.weights_file()
        try:
            self.create(num_classes=2)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EdgeftError(f"{self.path()}: transformers cannot load it: {reason}") from exc

    def run_files(self) -> dict[str, Path]:
        return {name: self.path() / name for name in (CONFIG_FILE, *self.needs)}

    def record(self, model: nn.Module) -> dict[str, object]:
        weights = self.weights_file()
        return super().record(model) | {
            "source": "huggingface",
            "model_type": read_config(self.path()).get("model_type"),
            "folder": str(self.path()),
            "weights_sha256": sha256_file(weights),
        }

    def labels(self) -> list[str]:
        return []

    def layer_groups(self, model: nn.Module) -> list[LayerGroup]:
        return architecture_groups(model)

    @abstractmethod
    def create(self, num_classes: int | None = None, pretrained: bool = True) -> nn.Module: ...

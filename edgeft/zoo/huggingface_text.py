"""A local Hugging Face encoder folder (BERT family) as a text classifier.

MiniLM in the zoo is this class pointed at the folder a package ships; users pass their own folder.
Loading is offline only: ``local_files_only`` and ``HF_HUB_OFFLINE`` are always set.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from torch import nn
from transformers import AutoModel, AutoModelForSequenceClassification
from transformers.utils import logging as hf_logging

from edgeft.bundle import TextPreprocessing
from edgeft.errors import EdgeftError
from edgeft.zoo.base import LayerGroup, ZooModel
from edgeft.zoo.packaged_weights import PackagedWeights

TOKENIZER_FILE = "tokenizer.json"


class HuggingFaceTextModel(ZooModel):
    task = "text-classification"

    def __init__(
        self,
        name: str,
        folder: PackagedWeights | Path,
        description: str = "",
        max_length: int = 128,
    ) -> None:
        self.name = name
        self.folder = folder
        self.description = description or f"Hugging Face encoder at {folder}"
        self.max_length = max_length

    @property
    def weights_source(self) -> str:
        return (
            self.folder.pip_spec if isinstance(self.folder, PackagedWeights) else str(self.folder)
        )

    def path(self) -> Path:
        folder = (
            self.folder.path() if isinstance(self.folder, PackagedWeights) else Path(self.folder)
        )
        if not (folder / "config.json").is_file():
            raise EdgeftError(f"{folder}: not a Hugging Face model folder (no config.json)")
        if not (folder / TOKENIZER_FILE).is_file():
            raise EdgeftError(f"{folder}: no {TOKENIZER_FILE} (edgeft needs a fast tokenizer file)")
        return folder

    @property
    def preprocessing(self) -> TextPreprocessing:
        config_file = self.path() / "tokenizer_config.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        return TextPreprocessing(
            tokenizer=TOKENIZER_FILE,
            max_length=self.max_length,
            lowercase=bool(config.get("do_lower_case", False)),
        )

    def labels(self) -> list[str]:
        return []

    def create(self, num_classes: int | None = None) -> nn.Module:
        """The bare encoder, or with ``num_classes`` an encoder plus a new classification head."""
        folder = str(self.path())
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the "newly initialized head" warning is the point here
        try:
            if num_classes is None:
                return AutoModel.from_pretrained(folder, local_files_only=True)
            return AutoModelForSequenceClassification.from_pretrained(
                folder, num_labels=num_classes, local_files_only=True
            )
        finally:
            hf_logging.set_verbosity(verbosity)

    def replace_head(self, model: nn.Module, num_classes: int) -> nn.Module:
        old = model.classifier
        model.classifier = nn.Linear(old.in_features, num_classes)
        model.config.num_labels = num_classes
        model.num_labels = num_classes
        return model

    def layer_groups(self, model: nn.Module) -> list[LayerGroup]:
        encoder = model.base_model
        layers = [
            LayerGroup(f"encoder.layer.{i}", (m,)) for i, m in enumerate(encoder.encoder.layer)
        ]
        head_parts = [
            m for m in (getattr(encoder, "pooler", None), model.classifier) if m is not None
        ]
        return [
            LayerGroup("embeddings", (encoder.embeddings,)),
            *layers,
            LayerGroup("classifier", tuple(head_parts)),
        ]

"""A local Hugging Face encoder folder (BERT family) as a text classifier.

MiniLM in the zoo is this class pointed at the folder a package ships; users pass their own folder.
Loading is offline only: ``local_files_only`` and ``HF_HUB_OFFLINE`` are always set.

The classifier is the encoder, the attention-masked mean of its token vectors, and a linear head:
sentence encoders such as all-MiniLM-L6-v2 were trained with mean pooling (their ``1_Pooling``),
so even frozen, their pooled vectors separate classes; BERT's [CLS] pooler was not trained there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from torch import nn
from transformers import AutoConfig, AutoModel
from transformers.utils import logging as hf_logging

from edgeft.bundle import TextPreprocessing
from edgeft.errors import EdgeftError
from edgeft.packaged import PackagedFile
from edgeft.zoo.base import LayerGroup, ZooModel

TOKENIZER_FILE = "tokenizer.json"
INPUT_NAMES = ("input_ids", "attention_mask")


class MeanPooledClassifier(nn.Module):
    """Token ids and attention mask -> class logits."""

    def __init__(self, encoder: nn.Module, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        tokens = self.encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.classifier(self.dropout(pooled))


class HuggingFaceTextModel(ZooModel):
    task = "text-classification"

    def __init__(
        self,
        name: str,
        folder: PackagedFile | Path,
        description: str = "",
        max_length: int = 128,
    ) -> None:
        self.name = name
        self.folder = folder
        self.description = description or f"Hugging Face encoder at {folder}"
        self.max_length = max_length

    @property
    def weights_source(self) -> str:
        return self.folder.pip_spec if isinstance(self.folder, PackagedFile) else str(self.folder)

    def path(self) -> Path:
        folder = self.folder.path() if isinstance(self.folder, PackagedFile) else Path(self.folder)
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

    def create(self, num_classes: int | None = None, pretrained: bool = True) -> nn.Module:
        """The bare encoder, or with ``num_classes`` a ``MeanPooledClassifier`` with a new head."""
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # unused-weights notices for the [CLS] pooler
        try:
            if pretrained:
                encoder = AutoModel.from_pretrained(
                    str(self.path()), local_files_only=True, add_pooling_layer=False
                )
            else:
                config = AutoConfig.from_pretrained(str(self.path()), local_files_only=True)
                encoder = AutoModel.from_config(config, add_pooling_layer=False)
        finally:
            hf_logging.set_verbosity(verbosity)
        return encoder if num_classes is None else MeanPooledClassifier(encoder, num_classes)

    def replace_head(self, model: nn.Module, num_classes: int) -> nn.Module:
        model.classifier = nn.Linear(model.classifier.in_features, num_classes)
        return model

    def layer_groups(self, model: nn.Module) -> list[LayerGroup]:
        encoder = model.encoder
        layers = [
            LayerGroup(f"encoder.layer.{i}", (m,)) for i, m in enumerate(encoder.encoder.layer)
        ]
        return [
            LayerGroup("embeddings", (encoder.embeddings,)),
            *layers,
            LayerGroup("classifier", (model.classifier,)),
        ]

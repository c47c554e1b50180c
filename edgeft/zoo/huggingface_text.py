"""A local Hugging Face encoder folder (BERT, DistilBERT, RoBERTa and kin) as a text classifier.

MiniLM in the zoo is this class pointed at the folder a package ships; users pass their own folder.

The classifier is the encoder, the attention-masked mean of its token vectors, and a linear head:
sentence encoders such as all-MiniLM-L6-v2 were trained with mean pooling (their ``1_Pooling``),
so even frozen, their pooled vectors separate classes; BERT's [CLS] pooler was not trained there
and is dropped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
from torch import nn
from transformers import AutoConfig, AutoModel

from edgeft.bundle import TextPreprocessing
from edgeft.errors import EdgeftError
from edgeft.library_noise import quiet_transformers
from edgeft.packaged import PackagedFile
from edgeft.zoo.huggingface_folder import HuggingFaceFolderModel, read_config

if TYPE_CHECKING:
    from transformers import PreTrainedModel

TOKENIZER_FILE = "tokenizer.json"
INPUT_NAMES = ("input_ids", "attention_mask")


class MeanPooledClassifier(nn.Module):
    """Token ids and attention mask -> class logits."""

    def __init__(self, encoder: PreTrainedModel, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        tokens = self.encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.classifier(self.dropout(pooled))


class HuggingFaceTextModel(HuggingFaceFolderModel):
    task = "text-classification"
    needs = (TOKENIZER_FILE,)

    def __init__(
        self,
        name: str,
        folder: PackagedFile | Path,
        description: str = "",
        max_length: int = 128,
    ) -> None:
        super().__init__(name, folder, description)
        self.max_length = max_length

    @property
    def preprocessing(self) -> TextPreprocessing:
        config_file = self.path() / "tokenizer_config.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        # Two positions spare: RoBERTa's positions start after its padding index.
        positions = read_config(self.path()).get("max_position_embeddings", 514) - 2
        return TextPreprocessing(
            tokenizer=TOKENIZER_FILE,
            max_length=min(self.max_length, config.get("model_max_length", 1 << 30), positions),
            lowercase=bool(config.get("do_lower_case", False)),
        )

    def check(self) -> None:
        from tokenizers import Tokenizer

        try:
            Tokenizer.from_file(str(self.path() / TOKENIZER_FILE))
        except Exception as exc:  # the Rust tokenizer raises a bare Exception for a bad file
            raise EdgeftError(
                f"{self.path() / TOKENIZER_FILE}: not a readable tokenizer ({exc})"
            ) from exc
        super().check()

    def create(self, num_classes: int | None = None, pretrained: bool = True) -> nn.Module:
        """The bare encoder, or with ``num_classes`` a ``MeanPooledClassifier`` with a new head."""
        with quiet_transformers():
            if pretrained:
                encoder = AutoModel.from_pretrained(str(self.path()), local_files_only=True)
            else:
                config = AutoConfig.from_pretrained(str(self.path()), local_files_only=True)
                encoder = AutoModel.from_config(config)
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler = None  # the [CLS] pooler: unused by mean pooling
        return encoder if num_classes is None else MeanPooledClassifier(encoder, num_classes)

    def replace_head(self, model: nn.Module, num_classes: int) -> nn.Module:
        classifier = cast(MeanPooledClassifier, model)  # what create() built with num_classes
        classifier.classifier = nn.Linear(classifier.classifier.in_features, num_classes)
        return model

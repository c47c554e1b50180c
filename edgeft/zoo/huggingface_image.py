"""A local Hugging Face image classifier folder (ViT, DeiT, Swin and kin), re-headed.

The network is transformers' own image-classification model for the folder's type, so its pooling
(ViT's class token after the final norm) is the one the weights were trained with; its head is
replaced by one with the dataset's classes. The preprocessing comes from the folder's
``preprocessor_config.json``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal, cast

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForImageClassification

from edgeft.bundle import ImagePreprocessing
from edgeft.errors import EdgeftError
from edgeft.library_noise import quiet_transformers
from edgeft.zoo.huggingface_folder import HuggingFaceFolderModel
from edgeft.zoo.network import replace_last_linear

if TYPE_CHECKING:
    from transformers import PreTrainedModel

PREPROCESSOR_FILE = "preprocessor_config.json"
# PIL's resampling codes, as image processors record them.
_RESAMPLE: dict[int, Literal["bilinear", "bicubic"]] = {2: "bilinear", 3: "bicubic"}


class LogitsOnly(nn.Module):
    """transformers' classifier with a plain tensor out, as ``torch.onnx`` and the budget want."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


class HuggingFaceImageModel(HuggingFaceFolderModel):
    task = "image-classification"

    @property
    def preprocessing(self) -> ImagePreprocessing:
        file = self.path() / PREPROCESSOR_FILE
        config: dict[str, Any] = json.loads(file.read_text()) if file.is_file() else {}
        size = config.get("size", {"height": 224, "width": 224})
        side = size.get("shortest_edge") or size.get("height") if isinstance(size, dict) else size
        crop = config.get("crop_size", side) if config.get("do_center_crop") else side
        crop = crop.get("height") if isinstance(crop, dict) else crop
        if side is None or crop is None:
            raise EdgeftError(f"{file}: its size or crop_size has no shortest_edge or height")
        return ImagePreprocessing(
            crop=(int(crop), int(crop)),
            resize=int(side),
            interpolation=_RESAMPLE.get(config.get("resample", 2), "bilinear"),
            mean=tuple(config.get("image_mean", (0.5, 0.5, 0.5))),
            std=tuple(config.get("image_std", (0.5, 0.5, 0.5))),
        )

    def create(self, num_classes: int | None = None, pretrained: bool = True) -> nn.Module:
        """The folder's classifier; with ``num_classes``, a new head of that size."""
        with quiet_transformers():
            if pretrained:
                model = AutoModelForImageClassification.from_pretrained(
                    str(self.path()), local_files_only=True
                )
            else:
                config = AutoConfig.from_pretrained(str(self.path()), local_files_only=True)
                model = AutoModelForImageClassification.from_config(config)
        wrapped = LogitsOnly(model)
        return self.replace_head(wrapped, num_classes) if num_classes else wrapped

    def replace_head(self, model: nn.Module, num_classes: int) -> nn.Module:
        cast(LogitsOnly, model).model.config.num_labels = num_classes
        return replace_last_linear(model, num_classes)

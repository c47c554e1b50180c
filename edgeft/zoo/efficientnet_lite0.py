"""EfficientNet-Lite0: timm's ``tf_efficientnet_lite0`` with the packaged lukemelas checkpoint.

The checkpoint uses lukemelas key names (``_conv_stem``, ``_blocks.N``); its tensors line up one to
one, in order, with timm's, which reproduces the original outputs exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import timm
from torch import nn

from edgeft.bundle import ImagePreprocessing
from edgeft.errors import EdgeftError
from edgeft.zoo.base import ZooModel
from edgeft.zoo.imagenet import imagenet_labels
from edgeft.zoo.network import LayerGroup
from edgeft.zoo.packaged_weights import EFFICIENTNET_LITE0_IMAGENET
from edgeft.zoo.state_dict_files import load_state_dict

if TYPE_CHECKING:
    from timm.models.efficientnet import EfficientNet

_TIMM_ARCH = "tf_efficientnet_lite0"


def _is_counter(key: str) -> bool:
    return key.endswith("num_batches_tracked")


class EfficientNetLite0(ZooModel):
    name = "efficientnet_lite0"
    task = "image-classification"
    description = "EfficientNet-Lite0 (ImageNet): no SE, ReLU6; made for int8 on edge CPUs"
    weights = EFFICIENTNET_LITE0_IMAGENET

    @property
    def weights_source(self) -> str:
        return self.weights.pip_spec

    @property
    def preprocessing(self) -> ImagePreprocessing:
        pretrained_cfg = timm.get_pretrained_cfg(_TIMM_ARCH)
        if pretrained_cfg is None:
            raise EdgeftError(f"timm {timm.__version__} has no pretrained config for {_TIMM_ARCH}")
        cfg = pretrained_cfg.to_dict()
        size = cfg["input_size"][1]
        return ImagePreprocessing(
            crop=(size, size),
            resize=round(size / cfg["crop_pct"]),
            interpolation=cfg["interpolation"],
            mean=tuple(cfg["mean"]),
            std=tuple(cfg["std"]),
        )

    def labels(self) -> list[str]:
        return list(imagenet_labels())

    def create(self, num_classes: int | None = None, pretrained: bool = True) -> nn.Module:
        model = timm.create_model(_TIMM_ARCH, pretrained=False)
        if pretrained:
            self._load_pretrained(model)
        return self.replace_head(model, num_classes) if num_classes else model

    def _load_pretrained(self, model: nn.Module) -> None:
        source = load_state_dict(self.weights.path())
        source_keys = [k for k in source if not _is_counter(k)]
        target = model.state_dict()
        target_keys = [k for k in target if not _is_counter(k)]
        if len(source_keys) != len(target_keys) or any(
            source[s].shape != target[t].shape
            for s, t in zip(source_keys, target_keys, strict=True)
        ):
            raise EdgeftError(f"{self.weights.pip_spec} does not line up with timm {_TIMM_ARCH}")
        model.load_state_dict(
            {t: source[s] for s, t in zip(source_keys, target_keys, strict=True)}, strict=False
        )

    def replace_head(self, model: nn.Module, num_classes: int) -> nn.Module:
        cast("EfficientNet", model).reset_classifier(num_classes)
        return model

    def layer_groups(self, model: nn.Module) -> list[LayerGroup]:
        model = cast("EfficientNet", model)  # what create() built
        stem = LayerGroup("stem", (model.conv_stem, model.bn1))
        blocks = [LayerGroup(f"blocks.{i}", (block,)) for i, block in enumerate(model.blocks)]
        top = LayerGroup("conv_head", (model.conv_head, model.bn2))
        return [stem, *blocks, top, LayerGroup("classifier", (model.classifier,))]

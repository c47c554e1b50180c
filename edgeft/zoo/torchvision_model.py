"""Any torchvision classification architecture with a local weights file.

MobileNetV2 in the zoo is this class with the weights from a package; users bring their own with
``torchvision:<arch>`` and ``--weights FILE``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torchvision
from torch import nn

from edgeft.bundle import ImagePreprocessing
from edgeft.errors import EdgeftError
from edgeft.packaged import PackagedFile
from edgeft.zoo.base import LayerGroup, ZooModel, last_linear
from edgeft.zoo.imagenet import imagenet_labels
from edgeft.zoo.state_dict_files import load_state_dict


class TorchvisionModel(ZooModel):
    """A torchvision architecture; ``stages`` groups ``features`` children for fine-tuning."""

    task = "image-classification"

    def __init__(
        self,
        name: str,
        arch: str,
        weights: PackagedFile | Path,
        description: str = "",
        stages: Sequence[Sequence[int]] | None = None,
    ) -> None:
        if arch not in torchvision.models.list_models(module=torchvision.models):
            raise EdgeftError(f"unknown torchvision classification architecture {arch!r}")
        self.name = name
        self.arch = arch
        self.weights = weights
        self.description = description or f"torchvision {arch}"
        self.stages = stages

    @property
    def weights_source(self) -> str:
        if isinstance(self.weights, PackagedFile):
            return self.weights.pip_spec
        return str(self.weights)

    @property
    def preprocessing(self) -> ImagePreprocessing:
        preset = next(iter(torchvision.models.get_model_weights(self.arch))).transforms()
        return ImagePreprocessing(
            crop=(preset.crop_size[0], preset.crop_size[0]),
            resize=preset.resize_size[0],
            interpolation=preset.interpolation.value,
            mean=tuple(preset.mean),
            std=tuple(preset.std),
        )

    def labels(self) -> list[str]:
        return list(imagenet_labels())

    def create(self, num_classes: int | None = None, pretrained: bool = True) -> nn.Module:
        model = torchvision.models.get_model(self.arch, weights=None)
        if pretrained:
            self._load_pretrained(model)
        return self.replace_head(model, num_classes) if num_classes else model

    def _load_pretrained(self, model: nn.Module) -> None:
        path = self.weights.path() if isinstance(self.weights, PackagedFile) else self.weights
        result = model.load_state_dict(load_state_dict(path), strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise EdgeftError(
                f"{path} does not fit torchvision {self.arch}: "
                f"missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}"
            )

    def replace_head(self, model: nn.Module, num_classes: int) -> nn.Module:
        name, linear = last_linear(model)
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, nn.Linear(linear.in_features, num_classes))
        return model

    def layer_groups(self, model: nn.Module) -> list[LayerGroup]:
        head_name = last_linear(model)[0].split(".")[0]
        head = LayerGroup(head_name, (model.get_submodule(head_name),))
        features = getattr(model, "features", None)
        if isinstance(features, nn.Sequential):
            children = list(features)
            stages = self.stages or [[i] for i in range(len(children))]
            body = [
                LayerGroup(f"features.{s[0]}-{s[-1]}", tuple(children[i] for i in s))
                for s in stages
            ]
        else:
            body = [
                LayerGroup(n, (m,))
                for n, m in model.named_children()
                if n != head_name and any(True for _ in m.parameters())
            ]
        return [*body, head]

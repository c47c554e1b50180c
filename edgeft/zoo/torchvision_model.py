"""Any torchvision classification architecture with a local weights file.

MobileNetV2 in the zoo is this class with the weights from a package; users bring their own with
``torchvision:<arch>`` and ``--weights FILE``. The preprocessing comes from torchvision's weight
metadata for the architecture, the layer groups from the network's structure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torchvision
from torch import nn

from edgeft.bundle import ImagePreprocessing, sha256_file
from edgeft.errors import EdgeftError
from edgeft.packaged import PackagedFile
from edgeft.zoo.base import ZooModel
from edgeft.zoo.imagenet import imagenet_labels
from edgeft.zoo.layer_groups import architecture_groups
from edgeft.zoo.network import LayerGroup, replace_last_linear
from edgeft.zoo.state_dict_files import load_state_dict


class TorchvisionModel(ZooModel):
    """A torchvision architecture; ``stages`` merges the trunk's children into the paper's
    stages for fine-tuning. ``weights`` None builds the architecture only (a run's own weights
    are loaded on top)."""

    task = "image-classification"

    def __init__(
        self,
        name: str,
        arch: str,
        weights: PackagedFile | Path | None,
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

    def _weights_path(self) -> Path:
        if self.weights is None:
            raise EdgeftError(f"torchvision:{self.arch} was built without a weights file")
        return self.weights.path() if isinstance(self.weights, PackagedFile) else self.weights

    def record(self, model: nn.Module) -> dict[str, object]:
        if isinstance(self.weights, PackagedFile):
            return super().record(model)
        path = self._weights_path()
        return super().record(model) | {
            "source": "torchvision",
            "arch": self.arch,
            "weights": str(path),
            "weights_sha256": sha256_file(path),
        }

    def check(self) -> None:
        self._fitting_state_dict(torchvision.models.get_model(self.arch, weights=None))

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

    def _fitting_state_dict(self, model: nn.Module) -> dict:
        """The weights file's tensors, refused with the keys or shapes that do not fit."""
        path = self._weights_path()
        state, expected = load_state_dict(path), model.state_dict()
        # Old torchvision files lack batch-norm counters; loading fills them in.
        missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
        unexpected = [k for k in state if k not in expected]
        if missing or unexpected:
            raise EdgeftError(
                f"{path} does not fit torchvision {self.arch}: "
                f"missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
        shapes = [
            f"{k} {tuple(state[k].shape)} where {self.arch} has {tuple(v.shape)}"
            for k, v in expected.items()
            if k in state and state[k].shape != v.shape
        ]
        if shapes:
            raise EdgeftError(f"{path} does not fit torchvision {self.arch}: {shapes[0]}")
        return state

    def _load_pretrained(self, model: nn.Module) -> None:
        model.load_state_dict(self._fitting_state_dict(model))

    def replace_head(self, model: nn.Module, num_classes: int) -> nn.Module:
        return replace_last_linear(model, num_classes)

    def layer_groups(self, model: nn.Module) -> list[LayerGroup]:
        return architecture_groups(model, self.stages)

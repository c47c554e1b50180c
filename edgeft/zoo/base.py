"""What every zoo entry can do, whatever library builds the network."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from torch import nn

from edgeft.bundle import Preprocessing
from edgeft.zoo.layer_groups import family_of, head_name
from edgeft.zoo.network import LayerGroup


class ZooModel(ABC):
    """A pretrained backbone: how to build it, feed it, re-head it and slice it for fine-tuning."""

    name: str
    task: str
    description: str

    @property
    @abstractmethod
    def preprocessing(self) -> Preprocessing:
        """The input transform the pretrained weights expect."""

    @property
    @abstractmethod
    def weights_source(self) -> str:
        """Where the pretrained weights come from (a package or a local path), for listings."""

    @abstractmethod
    def labels(self) -> list[str]:
        """The pretrained head's class names ([] when the network has no classification head)."""

    @abstractmethod
    def create(self, num_classes: int | None = None, pretrained: bool = True) -> nn.Module:
        """The network with pretrained weights; with ``num_classes``, a fresh head of that size.

        ``pretrained=False`` gives the architecture's own random initialisation: the from-scratch
        baseline of a transfer-learning comparison, and a cheap shell for loading a run's weights.
        """

    @abstractmethod
    def replace_head(self, model: nn.Module, num_classes: int) -> nn.Module:
        """Swap the classification head for a newly initialised one with ``num_classes`` outputs."""

    @abstractmethod
    def layer_groups(self, model: nn.Module) -> list[LayerGroup]:
        """The network's groups ordered from input to output; the last one is the head."""

    def check(self) -> None:  # noqa: B027 - zoo weights are checked by hash when loaded
        """Refuse weights that do not fit the architecture, before a run folder exists."""

    def run_files(self) -> dict[str, Path]:
        """Files a run folder keeps so the network can be rebuilt from it (a tokenizer)."""
        return {}

    def record(self, model: nn.Module) -> dict[str, object]:
        """What a run records about its network (``model``, built by ``create``): enough for
        ``edgeft.zoo.rebuild`` to build it again, and its family for the quantizers."""
        return {
            "source": "zoo",
            "name": self.name,
            "weights": self.weights_source,
            "head": head_name(model),
            "family": family_of(model),
        }

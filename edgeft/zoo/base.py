"""What every zoo entry can do, whatever library builds the network."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from edgeft.bundle import Preprocessing
from edgeft.errors import EdgeftError


@dataclass(frozen=True)
class LayerGroup:
    """A named slice of the network, frozen, unfrozen and given a learning rate as one unit.

    ``tensors`` are parameters held directly by a module that is not itself in the group (a
    transformer's class token and position embedding)."""

    name: str
    modules: tuple[nn.Module, ...]
    tensors: tuple[nn.Parameter, ...] = ()

    def parameters(self) -> Iterator[nn.Parameter]:
        for module in self.modules:
            yield from module.parameters()
        yield from self.tensors

    @property
    def holds_parameters(self) -> bool:
        return any(True for _ in self.parameters())


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
        from edgeft.zoo.layer_groups import family_of, head_name

        return {
            "source": "zoo",
            "name": self.name,
            "weights": self.weights_source,
            "head": head_name(model),
            "family": family_of(model),
        }


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    """The classification head: the network's last Linear layer (its input is the pooled
    feature vector every zoo architecture ends with)."""
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise EdgeftError(f"{type(model).__name__} has no Linear classification head")
    return linears[-1]


def replace_last_linear(model: nn.Module, num_classes: int) -> nn.Module:
    """``model`` with its last Linear layer replaced by a fresh one with ``num_classes`` outputs."""
    name, linear = last_linear(model)
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, nn.Linear(linear.in_features, num_classes))
    return model

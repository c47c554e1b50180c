"""What a network is made of, as the zoo handles it: slices trained as one unit (layer groups),
its parameter count and its classification head."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from torch import nn

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

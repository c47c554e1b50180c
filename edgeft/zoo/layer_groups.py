"""Layer groups and model family read from the network's own structure, for any architecture.

A transformer is a stack of identical blocks that each hold an attention module: its groups are
what runs before the stack (patch or token embeddings), one group per block, what runs after it
(the final norm) and the head. A CNN's groups are its stages: the top-level children, where one
child holding nearly all the backbone (torchvision's ``features``) is opened into its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Literal

from torch import nn

from edgeft.zoo.network import LayerGroup, count_parameters, last_linear

Family = Literal["cnn", "transformer"]
# A child holding at least this share of its parent's backbone parameters is the trunk itself.
_TRUNK_SHARE = 0.9


def _has_attention(module: nn.Module) -> bool:
    return any(
        isinstance(m, nn.MultiheadAttention) or "Attention" in type(m).__name__
        for m in module.modules()
    )


def block_stack(model: nn.Module) -> str | None:
    """The name of the container of repeated attention blocks, the longest one; None for a CNN."""
    best: tuple[int, int, str] | None = None
    for name, module in model.named_modules():
        if not isinstance(module, nn.Sequential | nn.ModuleList) or len(module) < 2:
            continue
        kind, repeats = Counter(type(child) for child in module).most_common(1)[0]
        first = next(child for child in module if type(child) is kind)
        if repeats >= 2 and _has_attention(first):
            score = (repeats, count_parameters(module), name)
            best = score if best is None or score[:2] > best[:2] else best
    return None if best is None else best[2]


def family_of(model: nn.Module) -> Family:
    return "transformer" if block_stack(model) is not None else "cnn"


def head_name(model: nn.Module) -> str:
    """The classification head: the outermost module around the last Linear layer that is not
    most of the network (``fc``, ``classifier``, ``heads``; ``model.classifier`` in a wrapper)."""
    path = last_linear(model)[0].split(".")
    total = count_parameters(model)
    for depth in range(1, len(path) + 1):
        name = ".".join(path[:depth])
        if count_parameters(model.get_submodule(name)) < total / 2:
            return name
    return ".".join(path)


def _parameterised_children(module: nn.Module, head: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in module.named_children() if m is not head and count_parameters(m)]


def _cnn_trunk(model: nn.Module, head: nn.Module) -> str:
    """Open the child that holds nearly all of the parameters outside the head, while there is
    one with stages of its own."""
    path, module = "", model
    while True:
        children = _parameterised_children(module, head)
        total = sum(count_parameters(m) for _, m in children)
        big = [
            (n, m)
            for n, m in children
            if count_parameters(m) >= _TRUNK_SHARE * total
            and len(_parameterised_children(m, head)) >= 2
        ]
        if not big:
            return path
        name, module = big[0]
        path = f"{path}.{name}" if path else name


def _around(model: nn.Module, trunk: str, head: nn.Module) -> tuple[LayerGroup, LayerGroup]:
    """What runs before the trunk (with the direct parameters of its ancestors, such as a
    position embedding) and after it, walking the path from the root down to the trunk."""
    before: list[nn.Module] = []
    tensors: list[nn.Parameter] = []
    after: list[nn.Module] = []
    module = model
    for part in trunk.split(".") if trunk else []:
        tensors += module.parameters(recurse=False)
        names = [n for n, _ in _parameterised_children(module, head)]
        for name, child in _parameterised_children(module, head):
            if name != part:
                (before if names.index(name) < names.index(part) else after).append(child)
        module = module.get_submodule(part)
    return LayerGroup("stem", tuple(before), tuple(tensors)), LayerGroup("neck", tuple(after))


def architecture_groups(
    model: nn.Module, stages: Sequence[Sequence[int]] | None = None
) -> list[LayerGroup]:
    """Groups from input to output ending in the head; ``stages`` merges the trunk's children
    (indices into it) where a paper's stage boundaries are wanted instead of one per child."""
    head_path = head_name(model)
    head = model.get_submodule(head_path)
    trunk = block_stack(model) or _cnn_trunk(model, head)
    children = _parameterised_children(model.get_submodule(trunk) if trunk else model, head)
    prefix = f"{trunk}." if trunk else ""
    if stages:
        body = [
            LayerGroup(f"{prefix}{s[0]}-{s[-1]}", tuple(children[i][1] for i in s)) for s in stages
        ]
    else:
        body = [LayerGroup(f"{prefix}{n}", (m,)) for n, m in children]
    stem, neck = _around(model, trunk, head)
    return [
        *[g for g in (stem,) if g.holds_parameters],
        *body,
        *[g for g in (neck,) if g.holds_parameters],
        LayerGroup(head_path, (head,)),
    ]

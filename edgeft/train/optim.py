"""Discriminative learning rates, AdamW and a warm-up + cosine schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from edgeft.zoo import LayerGroup


def param_groups(
    groups: list[LayerGroup], lr_head: float, lr_backbone: float, decay: float, weight_decay: float
) -> list[dict[str, object]]:
    """One optimizer group per layer group (and per decay kind): the head at ``lr_head``, the
    backbone at ``lr_backbone`` times ``decay`` per group further from the head. Biases and norm
    weights (1-D) get no weight decay."""
    body, head = groups[:-1], groups[-1]
    body_rates = [lr_backbone * decay**depth for depth in reversed(range(len(body)))]
    rates = [*body_rates, lr_head]
    out: list[dict[str, object]] = []
    for group, lr in zip([*body, head], rates, strict=True):
        params = list(group.parameters())
        for decayed in (True, False):
            chosen = [p for p in params if (p.ndim > 1) == decayed]
            if chosen:
                out.append(
                    {
                        "params": chosen,
                        "lr": lr,
                        "weight_decay": weight_decay if decayed else 0.0,
                        "name": group.name,
                    }
                )
    return out


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0, then cosine decay to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(warmup_steps, 1)
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def thaw_top(groups: list[LayerGroup], count: int) -> int:
    """Make only the top ``count`` groups trainable; returns the trainable parameter count."""
    trainable = 0
    for index, group in enumerate(groups):
        on = index >= len(groups) - count
        for p in group.parameters():
            p.requires_grad_(on)
            trainable += p.numel() if on else 0
    return trainable


def train_mode(model: nn.Module, groups: list[LayerGroup]) -> None:
    """Train mode, but frozen groups stay in eval so their batch-norm statistics do not drift."""
    model.train()
    for group in groups:
        if not any(p.requires_grad for p in group.parameters()):
            for module in group.modules:
                module.eval()

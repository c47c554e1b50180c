"""Which backbone layers feed the patch features, when the user names none: PatchCore's
choice, the outputs of the last block at 1/8 and at 1/16 of the input resolution (mid-level:
generic enough to describe any texture, not yet specific to ImageNet's classes; ResNet's
``layer2`` and ``layer3``, MobileNetV2's ``features.6`` and ``features.13``). Found by running
the network once, so a bring-your-own torchvision model gets them too."""

from __future__ import annotations

import torch
from torch import nn

from edgeft.errors import EdgeftError

STRIDES = (8, 16)
PROBE_SIZE = 224


def default_taps(backbone: nn.Module) -> tuple[str, ...]:
    """The last block (a module at most two levels deep) to finish at each of ``STRIDES``."""
    finished: list[tuple[str, int]] = []
    hooks = []
    for name, module in backbone.named_modules():
        if name and name.count(".") <= 1:

            def record(_m: nn.Module, _i: object, out: object, name: str = name) -> None:
                if isinstance(out, torch.Tensor) and out.dim() == 4:
                    finished.append((name, PROBE_SIZE // int(out.shape[-1])))

            hooks.append(module.register_forward_hook(record))
    try:
        with torch.no_grad():
            backbone.eval()(torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE))
    finally:
        for hook in hooks:
            hook.remove()
    taps = []
    for stride in STRIDES:
        at_stride = [name for name, s in finished if s == stride]
        if not at_stride:
            raise EdgeftError(
                f"no layer of this backbone works at 1/{stride} of the input: name the layers "
                "to use with --layers"
            )
        taps.append(at_stride[-1])
    return tuple(taps)

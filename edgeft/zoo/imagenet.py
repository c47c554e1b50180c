"""ImageNet-1k class names, as torchvision ships them with its weights metadata."""

from __future__ import annotations

from functools import cache

from torchvision.models import MobileNet_V2_Weights


@cache
def imagenet_labels() -> tuple[str, ...]:
    return tuple(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])

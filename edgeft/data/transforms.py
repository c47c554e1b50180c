"""torchvision transforms built from a bundle's preprocessing spec (the build side's view).

Evaluation is exactly the spec: resize shorter side, centre crop, scale, normalise. The runtime
re-implements the same in numpy; parity tests hold the two together.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from edgeft.bundle import ImagePreprocessing

_INTERPOLATION = {
    "bilinear": v2.InterpolationMode.BILINEAR,
    "bicubic": v2.InterpolationMode.BICUBIC,
}


def eval_transform(spec: ImagePreprocessing) -> v2.Compose:
    """PIL RGB image -> normalised float tensor (C, H, W).

    Resize and crop run on the PIL image (torchvision then calls PIL), exactly as the runtime does.
    """
    return v2.Compose(
        [
            v2.Resize(
                spec.resize, interpolation=_INTERPOLATION[spec.interpolation], antialias=True
            ),
            v2.CenterCrop(spec.crop),
            v2.PILToTensor(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(spec.mean, spec.std),
        ]
    )


def train_transform(spec: ImagePreprocessing) -> v2.Compose:
    """Augmented view for training: the evaluation framing, then flips, a small rotation and
    mild colour jitter.

    No random crops: on inspection images a crop can cut the defect out and so flip the
    label. Vertical flips and rotations suit parts and cells, which have no "up".
    """
    return v2.Compose(
        [
            v2.Resize(
                spec.resize, interpolation=_INTERPOLATION[spec.interpolation], antialias=True
            ),
            v2.CenterCrop(spec.crop),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.RandomRotation(10, interpolation=v2.InterpolationMode.BILINEAR),
            v2.ColorJitter(brightness=0.1, contrast=0.1),
            v2.PILToTensor(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(spec.mean, spec.std),
        ]
    )

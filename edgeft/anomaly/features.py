"""Patch features of a pretrained backbone, as PatchCore uses them: mid-level feature maps
(generic enough to describe any texture, not yet specific to ImageNet's classes), each averaged
over its 3x3 neighbourhood so a patch describes its surroundings, brought to the finest tap's
grid and concatenated; optionally projected to fewer channels by a fixed random matrix (which
keeps distances, Johnson-Lindenstrauss) so the memory bank and the search stay small.

The module is plain torch (``torchvision``'s feature extractor, pooling, interpolation, a 1x1
convolution), so it exports to ONNX and quantizes like any classifier backbone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

from edgeft.errors import EdgeftError


class PatchFeatures(nn.Module):
    """Images ``[N, 3, H, W]`` -> patch features ``[N, C, h, w]`` on the first tap's grid, and
    the image embedding ``[N, D]``: the deepest tap averaged over the image, for whole-object
    anomalies that no single patch shows."""

    def __init__(
        self,
        backbone: nn.Module,
        taps: Sequence[str],
        aggregate: int = 3,
        channels: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not taps:
            raise EdgeftError("patch features need at least one backbone layer")
        self.taps = list(taps)
        try:
            self.body = create_feature_extractor(backbone, {t: t for t in self.taps})
        except (ValueError, RuntimeError) as exc:
            raise EdgeftError(f"backbone layers {', '.join(taps)}: {exc}") from None
        self.aggregate = aggregate
        with torch.no_grad():
            maps = self.body(torch.zeros(1, 3, 64, 64))
        # Taps coarser than the first are brought to its grid (decided here, not per call, so
        # the exported graph has no shape test in it).
        first = maps[self.taps[0]].shape[-2:]
        self.coarser = [maps[t].shape[-2:] != first for t in self.taps]
        width = sum(int(m.shape[1]) for m in maps.values())
        self.projection: nn.Conv2d | None = None
        if channels is not None and channels < width:
            generator = torch.Generator().manual_seed(seed)
            weight = torch.randn(channels, width, generator=generator) / channels**0.5
            self.projection = nn.Conv2d(width, channels, 1, bias=False)
            self.projection.weight.data.copy_(weight[:, :, None, None])
            self.projection.requires_grad_(False)
        self.channels = channels if self.projection is not None else width

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = self.body(images)
        maps = [outputs[t] for t in self.taps]
        size = maps[0].shape[-2:]
        pad = self.aggregate // 2
        local = [F.avg_pool2d(m, self.aggregate, 1, pad, count_include_pad=False) for m in maps]
        grid = [
            F.interpolate(m, size=size, mode="bilinear") if coarser else m
            for m, coarser in zip(local, self.coarser, strict=True)
        ]
        patches = torch.cat(grid, dim=1)
        if self.projection is not None:
            patches = self.projection(patches)
        return patches, maps[-1].mean(dim=(2, 3))

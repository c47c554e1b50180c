"""PatchCore-style fitting and scoring: no training loop, only feature extraction.

Fit: every good training image's patch features, a random sample of them reduced by a greedy
coreset to the memory bank, and each image's pooled embedding. Score: each patch's distance to
its nearest bank patch is the defect map; its maximum is the patch score (small, local defects:
a crack); the distance of the image embedding to its nearest good image is the embedding score
(whole-object anomalies: a wrong or missing part, a dark cell). With ``gaussians``, per-position
Gaussians of the same patch features too (PaDiM): how unusual each patch is for its place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress
from torch import nn

from edgeft.anomaly.coreset import greedy_coreset
from edgeft.anomaly.features import PatchFeatures
from edgeft.anomaly.gaussians import fit_gaussians
from edgeft.bundle.manifest import ImagePreprocessing
from edgeft.runtime.anomaly.gaussians import PositionGaussians
from edgeft.runtime.anomaly.nearest import nearest_distances
from edgeft.runtime.preprocess import ImagePreprocessor

BATCH = 16


@dataclass(frozen=True)
class PatchCoreSettings:
    """The knobs, with the defaults ``benchmarks/anomaly_elpv.py`` chose on ELPV (its table
    says what each lever gave). ``taps`` name backbone modules (torchvision's node names)."""

    taps: tuple[str, ...] = ("features.6", "features.13")
    image_size: int = 224
    aggregate: int = 3
    channels: int | None = None
    bank_size: int = 3000
    sample: int = 200_000  # random training patches the coreset chooses from
    seed: int = 0
    gaussians: int | None = None  # channels of per-position Gaussians (PaDiM); None: none
    gaussian_pool: int = 4  # their grid: the patch grid averaged over pool x pool


@dataclass
class AnomalyScores:
    """Per image: the defect map ``[N, h, w]`` (patch distances), the patch score (its
    maximum), the embedding score, the group of the nearest good image (0 without groups) and
    the worst position's Mahalanobis distance (where Gaussians were fitted)."""

    maps: np.ndarray
    patch: np.ndarray
    embedding: np.ndarray
    group: np.ndarray
    gaussian: np.ndarray | None = None


@dataclass
class PatchCoreModel:
    """What fitting leaves: the feature network, the bank and the good images' embeddings
    (with ``embedding_groups``: each one's group, an index)."""

    network: PatchFeatures
    preprocessing: ImagePreprocessing
    bank: np.ndarray
    embeddings: np.ndarray
    settings: PatchCoreSettings
    embedding_groups: np.ndarray | None = None
    gaussians: PositionGaussians | None = None

    def features(
        self, images: Sequence[Path], progress: Progress | None = None, what: str = "features"
    ) -> tuple[np.ndarray, np.ndarray]:
        return extract(self.network, self.preprocessing, images, progress, what)

    def score(self, images: Sequence[Path], progress: Progress | None = None) -> AnomalyScores:
        patches, embeddings = self.features(images, progress, "scoring")
        n, h, w, c = patches.shape
        maps = nearest_distances(patches.reshape(-1, c), self.bank).reshape(n, h, w)
        owners = self.embedding_groups
        groups = [self.embeddings] if owners is None else [
            self.embeddings[owners == g] for g in range(int(owners.max()) + 1)
        ]  # fmt: skip
        nearest = np.stack([nearest_distances(embeddings, rows) for rows in groups])
        group = nearest.argmin(axis=0)
        gaussian = None
        if self.gaussians is not None:
            gaussian = self.gaussians.distances(patches, group).reshape(n, -1).max(axis=1)
        return AnomalyScores(
            maps, maps.reshape(n, -1).max(axis=1), nearest.min(axis=0), group, gaussian
        )


def preprocessing_for(size: int, backbone: ImagePreprocessing | None = None) -> ImagePreprocessing:
    """The whole image at ``size`` x ``size`` (no crop: a defect at the edge still counts),
    normalised as the backbone's pretrained weights expect."""
    return replace(
        backbone or ImagePreprocessing((size, size), size), crop=(size, size), resize=size
    )


def extract(
    network: PatchFeatures,
    preprocessing: ImagePreprocessing,
    images: Sequence[Path],
    progress: Progress | None = None,
    what: str = "features",
) -> tuple[np.ndarray, np.ndarray]:
    """Patch features ``[N, h, w, C]`` and embeddings ``[N, D]`` of ``images``, decoded and
    preprocessed as the box's runtime does it."""
    prepare = ImagePreprocessor(preprocessing)
    task = progress.add_task(what, total=len(images)) if progress else None
    patches, embeddings = [], []
    with torch.inference_mode():
        for start in range(0, len(images), BATCH):
            batch = prepare.batch(images[start : start + BATCH])
            p, e = network(torch.from_numpy(batch))
            patches.append(p.permute(0, 2, 3, 1).numpy())
            embeddings.append(e.numpy())
            if progress is not None and task is not None:
                progress.advance(task, len(batch))
    return np.concatenate(patches), np.concatenate(embeddings)


def fit_patchcore(
    backbone: nn.Module,
    train: Sequence[Path],
    settings: PatchCoreSettings | None = None,
    progress: Progress | None = None,
    preprocessing: ImagePreprocessing | None = None,
    embedding_groups: np.ndarray | None = None,
) -> PatchCoreModel:
    """The memory bank of ``train`` (good images) under ``settings``; ``preprocessing`` is the
    backbone's own (its normalisation), resized to ``settings.image_size``;
    ``embedding_groups`` gives each image's variant (the Gaussians are fitted per variant)."""
    settings = settings or PatchCoreSettings()
    torch.manual_seed(settings.seed)
    network = PatchFeatures(
        backbone.eval(), settings.taps, settings.aggregate, settings.channels, settings.seed
    ).eval()
    preprocessing = preprocessing_for(settings.image_size, preprocessing)
    patches, embeddings = extract(network, preprocessing, train, progress, "good parts")
    flat = torch.from_numpy(patches.reshape(-1, patches.shape[-1]))
    generator = torch.Generator().manual_seed(settings.seed)
    sample = flat[torch.randperm(len(flat), generator=generator)[: settings.sample]]
    bank = sample[greedy_coreset(sample, settings.bank_size, seed=settings.seed)].numpy()
    gaussians = None
    if settings.gaussians:
        gaussians = fit_gaussians(
            patches, settings.gaussians, settings.seed, settings.gaussian_pool, embedding_groups
        )
    return PatchCoreModel(network, preprocessing, bank, embeddings, settings, embedding_groups,
                          gaussians)  # fmt: skip

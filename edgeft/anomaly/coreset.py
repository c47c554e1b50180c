"""Greedy k-center coreset of the patch memory bank (PatchCore, Roth et al. 2022): the bank keeps
the patches that cover the rest best, so a few percent of them score nearly as the whole set
does. Distances are taken in a random projection to ``projection`` dimensions (as PatchCore
does), which keeps each greedy step one matrix-vector product over the candidates."""

from __future__ import annotations

import torch


def greedy_coreset(
    features: torch.Tensor, size: int, projection: int = 128, seed: int = 0
) -> torch.Tensor:
    """Indices of ``size`` rows of ``features`` ``[M, C]``, each the row farthest from those
    already chosen (the first is random, from ``seed``)."""
    count = features.shape[0]
    if size >= count:
        return torch.arange(count)
    generator = torch.Generator().manual_seed(seed)
    points = features.float()
    if points.shape[1] > projection:
        matrix = torch.randn(points.shape[1], projection, generator=generator)
        points = points @ (matrix / projection**0.5)
    norms = (points * points).sum(dim=1)
    columns = points.t().contiguous()  # a row times [C, M] runs about 3x faster than [M, C] @ row

    def squared_distances(i: int) -> torch.Tensor:  # to row i, one vector-matrix product
        return norms - 2.0 * (points[i] @ columns) + norms[i]

    chosen = torch.empty(size, dtype=torch.long)
    chosen[0] = int(torch.randint(count, (1,), generator=generator))
    nearest = squared_distances(int(chosen[0]))
    for i in range(1, size):
        chosen[i] = int(torch.argmax(nearest))
        torch.minimum(nearest, squared_distances(int(chosen[i])), out=nearest)
    return chosen

"""Nearest-neighbour distances to the memory bank, in chunks of the bank so the memory a search
takes is bounded by ``max_bytes`` whatever the bank's size (an all-pairs distance matrix of a
full image's patches against a large bank is what makes naive PatchCore exports ask for
hundreds of GB). numpy only: the box side runs it."""

from __future__ import annotations

import numpy as np

DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def nearest_distances(
    queries: np.ndarray, bank: np.ndarray, max_bytes: int = DEFAULT_MAX_BYTES
) -> np.ndarray:
    """For each row of ``queries`` ``[P, C]``, the Euclidean distance to its nearest row of
    ``bank`` ``[B, C]``; the distance block held at once is at most ``max_bytes``."""
    queries = np.asarray(queries, dtype=np.float32)
    best = np.full(len(queries), np.inf, dtype=np.float32)
    query_norms = np.einsum("ij,ij->i", queries, queries)
    rows = max(1, max_bytes // (4 * max(1, len(queries))))
    for start in range(0, len(bank), rows):
        chunk = np.asarray(bank[start : start + rows], dtype=np.float32)
        squared = (
            query_norms[:, None] - 2.0 * queries @ chunk.T + np.einsum("ij,ij->i", chunk, chunk)
        )
        np.minimum(best, squared.min(axis=1), out=best)
    return np.sqrt(np.maximum(best, 0.0))

"""Nearest-neighbour distances to a memory bank on an inference engine, in chunks.

The engine runs the bundle's small distance graph (``anomaly/distance.onnx``: the squared
distance of each query row to its nearest row of one bank chunk); the bank and the queries are
fed in chunks, so the largest block the engine holds is ``max_queries x rows`` floats (16 MB by
default) whatever the bank's size or the batch. An all-pairs matrix of a batch's patches against
a large bank is what makes naive PatchCore exports ask for hundreds of GB.
"""

from __future__ import annotations

import numpy as np

from edgeft.runtime.engines.base import EngineSession

QUERIES, BANK, SQUARED_DISTANCE = "queries", "bank", "squared_distance"
MAX_QUERIES = 4096


class NearestSearch:
    """Distances of query rows to their nearest row of ``bank`` ``[B, C]``."""

    def __init__(
        self, session: EngineSession, bank: np.ndarray, rows: int, max_queries: int = MAX_QUERIES
    ) -> None:
        self.session = session
        self.width = bank.shape[1]
        self.max_queries = max_queries
        # The last chunk is padded with its own first row: a repeated row changes no minimum,
        # and every call then has the same bank shape (one compiled shape on OpenVINO).
        self.chunks = []
        for start in range(0, len(bank), rows):
            chunk = np.asarray(bank[start : start + rows], dtype=np.float32)
            if len(chunk) < rows and len(bank) > rows:
                chunk = np.concatenate([chunk, np.repeat(chunk[:1], rows - len(chunk), axis=0)])
            self.chunks.append(np.ascontiguousarray(chunk))

    @property
    def peak_block_bytes(self) -> int:
        """The largest distance block one engine call computes."""
        return 4 * self.max_queries * max(len(c) for c in self.chunks)

    def distances(self, queries: np.ndarray) -> np.ndarray:
        """``[P, C]`` -> ``[P]`` Euclidean distances to the nearest bank row."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        best = np.full(len(queries), np.inf, dtype=np.float32)
        for start in range(0, len(queries), self.max_queries):
            part = queries[start : start + self.max_queries]
            for chunk in self.chunks:
                found = self.session.run({QUERIES: part, BANK: chunk})[0]
                np.minimum(
                    best[start : start + len(part)], found, out=best[start : start + len(part)]
                )
        return np.sqrt(np.maximum(best, 0.0))

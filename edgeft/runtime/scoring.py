"""Scoring models as the edge box runs them: inputs encoded by ``edgeft.runtime`` once, then fed
to any number of engine sessions (fp32, int8 candidates, ...) so every model sees the same arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from edgeft.bundle import Bundle, ModelEntry
from edgeft.runtime.classification_metrics import classification_metrics
from edgeft.runtime.encoders import encoder_for
from edgeft.runtime.engines import EngineSession, open_session

BATCH = 32


@dataclass
class EncodedSplit:
    """A split's inputs as model-ready batches, and its labels (None for unlabelled images)."""

    batches: list[dict[str, np.ndarray]]
    labels: np.ndarray | None
    classes: list[str]

    def __len__(self) -> int:
        return sum(len(next(iter(b.values()))) for b in self.batches)

    def one_per_item(self) -> list[dict[str, np.ndarray]]:
        """The same inputs as batches of one, in order."""
        return [
            {name: array[i : i + 1] for name, array in batch.items()}
            for batch in self.batches
            for i in range(len(next(iter(batch.values()))))
        ]


def encode_items(
    bundle: Bundle,
    items: Sequence[str],
    labels: Sequence[int] | np.ndarray | None = None,
    progress: Progress | None = None,
    description: str = "encoding",
) -> EncodedSplit:
    encoder = encoder_for(bundle)
    batches = []
    task = progress.add_task(description, total=len(items)) if progress else None
    for start in range(0, len(items), BATCH):
        chunk = items[start : start + BATCH]
        batches.append(encoder.encode(chunk))
        if progress is not None and task is not None:
            progress.advance(task, len(chunk))
    kept = None if labels is None else np.asarray(labels, dtype=np.int64)
    return EncodedSplit(batches, kept, bundle.manifest.labels)


def session_logits(session: EngineSession, data: EncodedSplit) -> np.ndarray:
    return np.concatenate([session.run(batch)[0] for batch in data.batches])


def model_logits(
    engine: str, path: Path, precision: str, data: EncodedSplit, exact: bool = False
) -> np.ndarray:
    return session_logits(open_session(engine, path, precision=precision, exact=exact), data)


def entry_logits(bundle: Bundle, entry: ModelEntry, data: EncodedSplit) -> np.ndarray:
    """A model's logits; an int8 scheme that saturates on this host runs in exact arithmetic
    (what the host it is for computes), so build-side figures are the target's, not this CPU's."""
    scheme = entry.int8_scheme
    exact = scheme is not None and scheme.saturates_on() is not None
    return model_logits(entry.engine, bundle.path_of(entry), entry.precision, data, exact)


HEADLINE = ("accuracy", "macro_f1", "agreement")


def headline(scores: dict[str, Any], keys: Sequence[str] = HEADLINE) -> dict[str, Any]:
    """The few scores a table or manifest shows, of those ``scores`` has."""
    return {k: scores[k] for k in keys if k in scores}


def score_logits(
    logits: np.ndarray, data: EncodedSplit, reference: np.ndarray | None = None
) -> dict[str, Any]:
    """Classification metrics (when labelled) and top-1 agreement with ``reference`` logits."""
    predicted = logits.argmax(axis=1)
    scores: dict[str, Any] = {"examples": len(predicted)}
    if data.labels is not None:
        scores |= classification_metrics(data.labels, predicted, data.classes)
    if reference is not None:
        scores["agreement"] = float((predicted == reference.argmax(axis=1)).mean())
    return scores

"""``Predictor``: a bundle on the edge box, from image files/bytes/arrays to labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeft.bundle import Bundle, ImagePreprocessing
from edgeft.errors import EdgeftError
from edgeft.runtime.engines import open_session, session_class
from edgeft.runtime.preprocess import ImageInput, ImagePreprocessor


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    top_k: list[tuple[str, float]]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


class Predictor:
    """Loads (and verifies) a bundle, opens one of its models and predicts.

    ``engine="auto"`` takes the first model of the wanted precision in the bundle's order.
    """

    def __init__(
        self,
        bundle: str | Path | Bundle,
        engine: str = "auto",
        precision: str = "fp32",
        threads: int | None = None,
    ) -> None:
        if engine != "auto":
            session_class(engine)  # an unknown or missing engine is named before anything loads
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        manifest = self.bundle.manifest
        if not isinstance(manifest.preprocessing, ImagePreprocessing):
            raise EdgeftError("text bundles are not supported by the runtime yet")
        self.model = manifest.model(None if engine == "auto" else engine, precision)
        self.labels = manifest.labels
        self.preprocess = ImagePreprocessor(manifest.preprocessing)
        self.session = open_session(
            self.model.engine,
            self.bundle.path_of(self.model),
            threads=threads,
            precision=self.model.precision,
        )
        self._input = manifest.inputs[0].name

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Preprocessed (N, C, H, W) float32 -> class probabilities (N, classes)."""
        return softmax(self.session.run({self._input: batch.astype(np.float32, copy=False)})[0])

    def predict(self, images: Sequence[ImageInput], top_k: int = 5) -> list[Prediction]:
        probabilities = self.probabilities(self.preprocess.batch(images))
        k = max(1, min(top_k, len(self.labels)))
        out = []
        for row in probabilities:
            order = np.argsort(row)[::-1][:k]
            ranked = [(self.labels[i], float(row[i])) for i in order]
            out.append(Prediction(ranked[0][0], ranked[0][1], ranked))
        return out

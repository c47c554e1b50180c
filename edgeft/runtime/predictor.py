"""``Predictor``: a bundle on the edge box, from image files/bytes/arrays to labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeft.bundle import Bundle, TensorSpec
from edgeft.bundle.manifest import EMBEDDING_OUTPUT
from edgeft.runtime.encoders import encoder_for
from edgeft.runtime.model_choice import open_chosen_model
from edgeft.runtime.preprocess import ImageInput
from edgeft.targets import Host, TargetProfile


@dataclass(frozen=True)
class ModelOutputs:
    """Class probabilities (N, classes) and, where the graph has one, its embedding sketch
    (N, d). Sliced by rows, so a batcher hands each request its own."""

    probabilities: np.ndarray
    embedding: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.probabilities)

    def __getitem__(self, rows: slice) -> ModelOutputs:
        sketch = None if self.embedding is None else self.embedding[rows]
        return ModelOutputs(self.probabilities[rows], sketch)


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    top_k: list[tuple[str, float]]

    def to_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "confidence": self.confidence,
            "top_k": [{"label": label, "probability": p} for label, p in self.top_k],
        }


PROBABILITIES_OUTPUT = "probabilities"  # what a server answers (v2 output): FP32 [N, classes]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


class Predictor:
    """Loads (and verifies) a bundle, opens one of its models and predicts.

    The model is ``choose_model``'s: ``precision="auto"`` (the default, as on the command line)
    runs the int8 model that fits this host, else fp32; ``choice.notes`` say what was passed
    over. ``target`` (a profile from ``targets/``) limits the engines and supplies their
    settings: providers, device, hint, threads, streams. ``calibrated`` divides the logits by
    the temperature of the bundle's reference profile, so a confidence of 0.8 is right about
    80% of the time on data like the validation split.
    """

    def __init__(
        self,
        bundle: str | Path | Bundle,
        engine: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
        target: TargetProfile | None = None,
        allow_mismatch: bool = False,
        host: Host | None = None,
        calibrated: bool = False,
    ) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        manifest = self.bundle.manifest
        self.choice, self.session = open_chosen_model(
            self.bundle, engine, precision, threads, target, allow_mismatch, host
        )
        self.model = self.choice.entry
        self.labels = manifest.labels
        self.encoder = encoder_for(self.bundle)
        self.temperature = 1.0
        if calibrated:
            from edgeft.bundle.reference_statistics import ReferenceStatistics

            self.temperature = ReferenceStatistics.of(self.bundle).temperature
        self._embedding_output = manifest.output(EMBEDDING_OUTPUT)

    def warm_up(self, batch_sizes: Sequence[int] = (1,)) -> None:
        """One inference per batch size on a neutral input, so the first real request does not
        pay for what engines set up lazily (OpenVINO's static-shape copies, allocator arenas)."""
        sample = self.encoder.sample()
        for size in dict.fromkeys(batch_sizes):
            self.probabilities(self.encoder.encode([sample] * size))

    def probabilities(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Encoded model inputs (see ``encoder``) -> class probabilities (N, classes)."""
        return self.outputs(inputs).probabilities

    def outputs(self, inputs: Mapping[str, np.ndarray]) -> ModelOutputs:
        """Probabilities and the embedding sketch from one engine call."""
        outputs = self.session.run(inputs)
        probabilities = softmax(outputs[0] / self.temperature)
        if self._embedding_output is None:
            return ModelOutputs(probabilities)
        return ModelOutputs(probabilities, outputs[self._embedding_output])

    def predict(self, items: Sequence[ImageInput | str], top_k: int = 5) -> list[Prediction]:
        """Images (paths, bytes, PIL, uint8 arrays) or texts, as the bundle's task takes."""
        return self.rank(self.probabilities(self.encoder.encode(items)), top_k)

    def predict_arguments(self, arguments: Sequence[str], top_k: int = 5) -> list[Prediction]:
        """Command-line arguments: image file paths for an image model, the texts themselves for
        a text model."""
        is_text = self.bundle.manifest.task == "text-classification"
        return self.predict(arguments if is_text else [Path(a) for a in arguments], top_k)

    def output_specs(self) -> list[TensorSpec]:
        """What ``output_tensors`` serves: the class probabilities."""
        return [TensorSpec(PROBABILITIES_OUTPUT, (-1, len(self.labels)), "float32")]

    def output_tensors(self, outputs: ModelOutputs) -> dict[str, np.ndarray]:
        return {PROBABILITIES_OUTPUT: outputs.probabilities}

    def rows(self, outputs: ModelOutputs, top_k: int = 5) -> list[dict[str, object]]:
        """Each item's label, confidence and top-k, as ``predict --json`` and ``/v1`` show them."""
        return [p.to_dict() for p in self.rank(outputs.probabilities, top_k)]

    def rank(self, probabilities: np.ndarray, top_k: int = 5) -> list[Prediction]:
        """Class probabilities (N, classes) -> the best label and the top ``top_k`` of each row."""
        k = max(1, min(top_k, len(self.labels)))
        out = []
        for row in probabilities:
            order = np.argsort(row)[::-1][:k]
            ranked = [(self.labels[i], float(row[i])) for i in order]
            out.append(Prediction(ranked[0][0], ranked[0][1], ranked))
        return out

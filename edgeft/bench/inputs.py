"""Representative inputs for timing a bundle: a synthetic photo-sized image or a sentence,
encoded by the bundle's own encoder exactly as a request would be."""

from __future__ import annotations

import numpy as np

from edgeft.bundle import Bundle, ImagePreprocessing
from edgeft.runtime.encoders import encoder_for

SENTENCE = (
    "The conveyor stopped twice this morning and the label printer on line three keeps "
    "skipping every other box, please send someone before the afternoon shift."
)


def benchmark_inputs(bundle: Bundle, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``batch`` copies of one input (timing does not depend on pixel values or words)."""
    encoder = encoder_for(bundle)
    spec = bundle.manifest.preprocessing
    if isinstance(spec, ImagePreprocessing):
        height, width = (int(d * 1.15) for d in spec.crop)  # resized and cropped, as a photo is
        image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
        return encoder.encode([image] * batch)
    return encoder.encode([SENTENCE] * batch)

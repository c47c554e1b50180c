"""What runs on the edge box: numpy, an inference engine and an image/text decoder, no torch.

The build side may use this package (to evaluate a model exactly as the box runs it); this
package never imports the build side.
"""

from edgeft.bundle import Bundle
from edgeft.runtime.images import IMAGE_SUFFIXES, ImageDecodeError, decode_image
from edgeft.runtime.predictor import Prediction, Predictor
from edgeft.runtime.preprocess import ImagePreprocessor

__all__ = [
    "IMAGE_SUFFIXES",
    "Bundle",
    "ImageDecodeError",
    "ImagePreprocessor",
    "Prediction",
    "Predictor",
    "decode_image",
]

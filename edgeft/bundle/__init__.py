"""The bundle: one folder of model files plus ``edgeft.json``, the contract after training."""

from edgeft.bundle.manifest import (
    MANIFEST_NAME,
    MODEL_FILES,
    SCHEMA_VERSION,
    ImagePreprocessing,
    Manifest,
    ModelEntry,
    Preprocessing,
    TensorSpec,
    TextPreprocessing,
    preprocessing_from_dict,
)
from edgeft.bundle.store import (
    Bundle,
    copy_bundle_files,
    model_files,
    sha256_file,
    stage_bundle,
    write_manifest,
)

__all__ = [
    "MANIFEST_NAME",
    "MODEL_FILES",
    "SCHEMA_VERSION",
    "Bundle",
    "ImagePreprocessing",
    "Manifest",
    "ModelEntry",
    "Preprocessing",
    "TensorSpec",
    "TextPreprocessing",
    "copy_bundle_files",
    "model_files",
    "preprocessing_from_dict",
    "sha256_file",
    "stage_bundle",
    "write_manifest",
]

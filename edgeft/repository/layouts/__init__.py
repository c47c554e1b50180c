"""A repository's production versions laid out for the serving engines a plant already runs at
scale: a Triton model repository or an OpenVINO Model Server configuration, each with a KServe
``InferenceService`` manifest. Preprocessing stays with the client there (``edgeft.runtime``'s
encoder does it in a few lines)."""

from edgeft.repository.layouts.served_model import ServedModel
from edgeft.repository.layouts.writer import write_layout

__all__ = ["ServedModel", "write_layout"]

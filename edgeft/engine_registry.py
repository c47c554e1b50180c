"""Engine backends by name, each imported only when asked for.

An edge box installs one engine, and the build side's quantizers pull in their own libraries
(NNCF, ONNX Runtime's quantization tools), so both registries (``edgeft.runtime.engines`` for
sessions, ``edgeft.quantize.backends`` for quantizers) name classes as ``"module:Class"`` and
import the one a caller picks.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from edgeft.errors import EdgeftError

# The engines edgeft runs and quantizes for, named once: the manifest, the target profiles and
# both registries use these names.
ENGINES: tuple[str, ...] = ("onnxruntime", "openvino")


def import_backend(backends: Mapping[str, str], engine: str, choices: str) -> type:
    """``backends[engine]`` ("module:Class"); a clear error for an unknown or missing engine."""
    if engine not in backends:
        raise EdgeftError(f"unknown engine {engine!r}; choose {choices}")
    module_name, class_name = backends[engine].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EdgeftError(f"engine {engine} is not installed here ({exc.name} missing)") from exc
    return getattr(module, class_name)

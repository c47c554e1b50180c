"""Hardware targets: what the host has, and (in ``targets/``) profiles of the boxes we deploy to."""

from edgeft.targets.host import (
    Host,
    host_fingerprint,
    onnxruntime_providers,
    openvino_devices,
    this_host,
)
from edgeft.targets.int8_scheme import QuantizationScheme
from edgeft.targets.profile import TargetProfile, load_targets, parse_target, resolve_target

__all__ = [
    "Host",
    "QuantizationScheme",
    "TargetProfile",
    "host_fingerprint",
    "load_targets",
    "onnxruntime_providers",
    "openvino_devices",
    "parse_target",
    "resolve_target",
    "this_host",
]

"""The int8 scheme a quantizer follows: data types, per-channel weights, range reduction.

A target profile states it; without one, the scheme fits this host (ONNX Runtime's own guidance:
u8 activations with s8 weights on x86; on CPUs without VNNI, whose u8 x s8 products go through
saturating 16-bit sums, 7-bit weights, ``reduce_range``, where the kernel saturates). On the
AVX2 host's ELPV run that int8 model ran 1.7x faster than fp32 at batch 1 and 1.3x faster than
u8 weights (U8U8, ONNX Runtime's other remedy), within the 1-point budget on validation and test.
NNCF has no u8 weights and narrows every layer (its overflow fix) on the same hosts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from edgeft.errors import EdgeftError
from edgeft.targets import Host, this_host

METHODS = ("minmax", "mean-minmax", "entropy", "percentile")


@dataclass(frozen=True)
class QuantizationScheme:
    activations: Literal["uint8", "int8"] = "uint8"
    weights: Literal["int8", "uint8"] = "int8"
    per_channel: bool = True
    reduce_range: bool = False

    def __post_init__(self) -> None:
        if self.activations not in ("uint8", "int8"):
            raise EdgeftError(f"activations must be uint8 or int8, not {self.activations!r}")
        if self.weights not in ("int8", "uint8"):
            raise EdgeftError(f"weights must be int8 or uint8, not {self.weights!r}")

    @property
    def avoids_saturation(self) -> bool:
        """Whether the target's u8 x s8 products saturate (no VNNI), so that NNCF must keep every
        layer's weights in 7 bits (its overflow fix), not just the first layer's (its default).
        On the AVX2 host, the zoo MobileNetV2's int8/fp32 agreement on 176 real photo views
        (``benchmarks/zoo_agreement.py``'s two calibration sets): 90.3% / 88.1% with the first
        layer narrowed, 93.2% / 90.3% with every layer, 62.5% / 63.1% with none (8-bit weights
        saturate); on ELPV's validation split it cost nothing."""
        return self.weights == "uint8" or self.reduce_range

    @classmethod
    def for_host(cls, host: Host | None = None) -> QuantizationScheme:
        host = host or this_host()
        if host.machine in ("aarch64", "arm64"):
            return cls(activations="int8")
        return cls() if host.has_vnni else cls(reduce_range=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantizationScheme:
        known = {"activations", "weights", "per_channel", "reduce_range"}
        unknown = set(data) - known
        if unknown:
            raise EdgeftError(f"unknown int8 scheme keys: {', '.join(sorted(unknown))}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

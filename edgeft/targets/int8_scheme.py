"""The int8 scheme of a quantized model, and whether a host's kernels compute it faithfully.

Both sides read it: the quantizers follow a scheme, the manifest records it per int8 model, and
the runtime checks it against the host before running that model. Without a target profile the
scheme fits the host (ONNX Runtime's guidance: u8 activations with s8 weights on x86; s8 x s8 on
ARM). On x86 CPUs without VNNI the u8 x s8 products go through saturating 16-bit sums, so a
model for such a box keeps 7-bit weights where the kernel saturates (``reduce_range``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from edgeft.errors import EdgeftError
from edgeft.targets.host import Host, this_host

X86 = ("x86_64", "AMD64")
ARM = ("aarch64", "arm64")


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
    def key(self) -> str:
        """A short file-name-safe name: ``u8s8`` (VNNI), ``u8s7`` (no VNNI), ``s8s8`` (ARM)."""
        weights = "u8" if self.weights == "uint8" else ("s7" if self.reduce_range else "s8")
        activations = "u8" if self.activations == "uint8" else "s8"
        return f"{activations}{weights}" + ("" if self.per_channel else "-per-tensor")

    @property
    def avoids_saturation(self) -> bool:
        """Whether every layer's products stay clear of 16-bit saturation, so that NNCF keeps
        every layer's weights in 7 bits (its overflow fix), not just the first layer's."""
        return self.weights == "uint8" or self.reduce_range

    def saturates_on(self, host: Host | None = None) -> str | None:
        """Why this host's int8 kernels would not compute this scheme faithfully (None: they
        do). 8-bit signed weights on an x86 CPU without VNNI overflow 16-bit partial sums."""
        host = host or this_host()
        if host.machine in X86 and not host.has_vnni and not self.avoids_saturation:
            return (
                f"its 8-bit weights ({self.key}) overflow the 16-bit sums of this CPU's int8 "
                "kernels (no VNNI)"
            )
        return None

    @classmethod
    def for_host(cls, host: Host | None = None) -> QuantizationScheme:
        host = host or this_host()
        if host.machine in ARM:
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

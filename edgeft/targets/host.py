"""What the machine we run on has: CPU model and ISA flags, core count (no torch needed)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

_CPUINFO = Path("/proc/cpuinfo")
# The flags that change which kernels the engines run, as recorded with results.
_SHOWN_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8",
                "amx_bf16", "asimd", "asimddp", "i8mm", "sve")  # fmt: skip


@dataclass(frozen=True)
class Host:
    """The CPU facts that decide which targets and int8 schemes fit this machine."""

    cpu_model: str
    machine: str
    flags: frozenset[str]
    cores: int

    @property
    def has_vnni(self) -> bool:
        """8-bit dot products without saturation (AVX-512 VNNI, AVX-VNNI or AMX)."""
        return bool(self.flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


def _read_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    model, flags = platform.processor() or platform.machine(), frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model in ("", platform.machine(), platform.processor()):
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return model, flags


@cache
def this_host() -> Host:
    text = _CPUINFO.read_text() if _CPUINFO.is_file() else ""
    model, flags = _read_cpuinfo(text)
    return Host(
        cpu_model=model,
        machine=platform.machine(),
        flags=flags,
        cores=len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count() or 1,
    )


@cache
def openvino_devices() -> tuple[str, ...]:
    """OpenVINO's devices here (CPU, GPU.0, NPU...); none when OpenVINO is not installed."""
    try:
        import openvino as ov
    except ImportError:
        return ()
    return tuple(ov.Core().available_devices)


NVIDIA_DRIVER_GPUS = Path("/proc/driver/nvidia/gpus")


def nvidia_gpus(listing: Path = NVIDIA_DRIVER_GPUS) -> tuple[str, ...]:
    """The model names of the GPUs NVIDIA's kernel driver lists; empty without the driver."""
    if not listing.is_dir():
        return ()
    names = []
    for info in sorted(listing.glob("*/information")):
        lines = [line.partition(":") for line in info.read_text().splitlines()]
        names.append(next((v.strip() for k, _, v in lines if k == "Model"), info.parent.name))
    return tuple(names)


def onnxruntime_wheel() -> str | None:
    """The installed ONNX Runtime distribution: ``onnxruntime-gpu`` (CUDA and TensorRT
    providers), ``onnxruntime`` (CPU) or None."""
    from importlib.metadata import PackageNotFoundError, distribution

    for name in ("onnxruntime-gpu", "onnxruntime"):
        try:
            distribution(name)
        except PackageNotFoundError:
            continue
        return name
    return None


@cache
def onnxruntime_providers() -> tuple[str, ...]:
    try:
        import onnxruntime as ort
    except ImportError:
        return ()
    return tuple(ort.get_available_providers())


def host_fingerprint(host: Host | None = None) -> dict[str, Any]:
    """What a measured figure depends on: CPU, kernel-deciding flags, engine versions."""
    from edgeft import __version__

    host = host or this_host()
    versions = {"edgeft": __version__, "python": platform.python_version()}
    for module in ("onnxruntime", "openvino"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            continue
    return {
        "cpu": host.cpu_model,
        "machine": host.machine,
        "cores": host.cores,
        "flags": [f for f in _SHOWN_FLAGS if f in host.flags],
        "versions": versions,
        "openvino_devices": list(openvino_devices()),
        "onnxruntime_providers": list(onnxruntime_providers()),
    }

"""Target profiles (``targets/*.toml``): what a box must have, how to run each engine on it, and
the int8 scheme its quantized models should follow.

A profile only runs on a host that matches it, because the engines pick their kernels from the
hardware they find: an AVX2 profile measured on a VNNI host would be the VNNI numbers.
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeft.engine_registry import ENGINES
from edgeft.errors import EdgeftError
from edgeft.targets.host import (
    NVIDIA_DRIVER_GPUS,
    Host,
    nvidia_gpus,
    onnxruntime_providers,
    onnxruntime_wheel,
    openvino_devices,
    this_host,
)
from edgeft.targets.int8_scheme import QuantizationScheme

_REQUIREMENT_KEYS = {
    "machine", "cpu_flags", "absent_cpu_flags", "openvino_devices", "onnxruntime_providers",
    "files", "absent_files", "gpus",
}  # fmt: skip
_GPU_VENDORS = {"nvidia"}
_ENGINE_KEYS = {"providers", "device", "hint", "threads", "streams"}


@dataclass(frozen=True)
class Requirements:
    machine: tuple[str, ...] = ()
    cpu_flags: tuple[str, ...] = ()
    absent_cpu_flags: tuple[str, ...] = ()
    openvino_devices: tuple[str, ...] = ()
    onnxruntime_providers: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    absent_files: tuple[str, ...] = ()
    gpus: tuple[str, ...] = ()  # vendors whose kernel driver must list a GPU


@dataclass(frozen=True)
class TargetProfile:
    """One hardware target. ``engines`` maps an engine to its session settings."""

    name: str
    description: str
    requires: Requirements
    engines: dict[str, dict[str, Any]]
    quantization: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def mismatches(self, host: Host | None = None) -> list[str]:
        """Why this host cannot run the target (empty: it can)."""
        host = host or this_host()
        need = self.requires
        reasons = []
        if need.machine and host.machine not in need.machine:
            reasons.append(f"needs a {'/'.join(need.machine)} CPU (this is {host.machine})")
        if missing := [f for f in need.cpu_flags if f not in host.flags]:
            reasons.append(f"CPU lacks {', '.join(missing)}")
        if extra := [f for f in need.absent_cpu_flags if f in host.flags]:
            reasons.append(f"CPU has {', '.join(extra)}, which the engines would use instead")
        if need.openvino_devices:
            have = openvino_devices()
            if missing := [
                d for d in need.openvino_devices if not any(h.startswith(d) for h in have)
            ]:
                reasons.append(f"OpenVINO sees no {', '.join(missing)} device")
        if "nvidia" in need.gpus and not nvidia_gpus():
            reasons.append(f"no NVIDIA GPU driver ({NVIDIA_DRIVER_GPUS} lists no GPU)")
        if need.onnxruntime_providers:
            have = onnxruntime_providers()
            if missing := [p for p in need.onnxruntime_providers if p not in have]:
                wheel = onnxruntime_wheel()
                hint = (
                    f" (the {wheel} wheel is installed; `make setup-gpu` installs onnxruntime-gpu)"
                    if "CUDAExecutionProvider" in missing and wheel != "onnxruntime-gpu"
                    else ""
                )
                reasons.append(f"ONNX Runtime lacks {', '.join(missing)}{hint}")
        if missing := [f for f in need.files if not Path(f).exists()]:
            reasons.append(f"no {', '.join(missing)}")
        if extra := [f for f in need.absent_files if Path(f).exists()]:
            reasons.append(f"{', '.join(extra)} marks a different box")
        return reasons

    def status(self, host: Host | None = None) -> dict[str, Any]:
        """What ``edgeft targets`` lists: engines, int8 scheme and whether ``host`` runs it."""
        why_not = self.mismatches(host)
        return {
            "name": self.name,
            "description": self.description,
            "engines": list(self.engines),
            "int8_scheme": self.quantization,
            "runs_here": not why_not,
            "why_not": why_not,
            "file": str(self.path),
        }

    def session_settings(self, engine: str) -> dict[str, Any]:
        """Settings for ``open_session``; providers the host lacks are dropped, in order."""
        settings = dict(self.engines[engine])
        if "providers" in settings:
            have = onnxruntime_providers()
            settings["providers"] = [p for p in settings["providers"] if p in have]
        return settings


def parse_target(data: dict[str, Any], path: Path | None = None) -> TargetProfile:
    """A profile from TOML data; every problem names the file and the key."""
    where = str(path) if path else "target"

    def fail(message: str) -> EdgeftError:
        return EdgeftError(f"{where}: {message}")

    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise fail('needs name = "..."')
    requires = data.get("requires", {})
    if unknown := set(requires) - _REQUIREMENT_KEYS:
        raise fail(f"unknown [requires] keys: {', '.join(sorted(unknown))}")
    for key, value in requires.items():
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail(f"[requires] {key} must be a list of strings")
    if unknown := set(requires.get("gpus", [])) - _GPU_VENDORS:
        raise fail(f"[requires] gpus: unknown vendor {', '.join(sorted(unknown))} (knows nvidia)")
    engines = data.get("engines", {})
    if not engines:
        raise fail("needs at least one [engines.<name>] table")
    for engine, settings in engines.items():
        if engine not in ENGINES:
            raise fail(f"unknown engine {engine!r} (edgeft runs {', '.join(ENGINES)})")
        if unknown := set(settings) - _ENGINE_KEYS:
            raise fail(f"unknown [engines.{engine}] keys: {', '.join(sorted(unknown))}")
    quantization = dict(data.get("quantization", {}))
    try:
        QuantizationScheme.from_dict(quantization)
    except (EdgeftError, TypeError) as exc:
        raise fail(f"[quantization]: {exc}") from exc
    return TargetProfile(
        name=name,
        description=str(data.get("description", "")),
        requires=Requirements(**{k: tuple(v) for k, v in requires.items()}),
        engines={engine: dict(settings) for engine, settings in engines.items()},
        quantization=quantization,
        path=path,
    )


def target_folders() -> list[Path]:
    """Where profiles are looked up: $EDGEFT_TARGETS, ./targets, then the installed set."""
    folders = [Path(p) for p in os.environ.get("EDGEFT_TARGETS", "").split(os.pathsep) if p]
    folders += [Path("targets"), Path(sys.prefix) / "share" / "edgeft" / "targets"]
    folders.append(Path(__file__).resolve().parents[2] / "targets")  # a source checkout
    return folders


def load_targets(folders: Iterable[Path] | None = None) -> dict[str, TargetProfile]:
    """Every profile by name; the first folder that defines a name wins."""
    targets: dict[str, TargetProfile] = {}
    for folder in folders if folders is not None else target_folders():
        for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
            try:
                data = tomllib.loads(path.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise EdgeftError(f"{path}: not valid TOML ({exc})") from exc
            profile = parse_target(data, path)
            targets.setdefault(profile.name, profile)
    return targets


def resolve_target(name: str | None, host: Host | None = None) -> TargetProfile:
    """The named profile, or the first that this host runs; refused where it cannot run."""
    targets = load_targets()
    if not targets:
        raise EdgeftError(
            "no target profiles found (looked in " + ", ".join(map(str, target_folders())) + ")"
        )
    if name is None:
        for profile in targets.values():
            if not profile.mismatches(host):
                return profile
        raise EdgeftError("no target profile matches this host; `edgeft targets` says why")
    if name not in targets:
        raise EdgeftError(f"unknown target {name!r}; choose one of {', '.join(targets)}")
    profile = targets[name]
    if reasons := profile.mismatches(host):
        raise EdgeftError(
            f"target {name} cannot run on this host: {'; '.join(reasons)}. "
            "Benchmark it on such a box (a result measured here would be this host's)."
        )
    return profile

"""Which int8 models a bundle needs: target profiles -> int8 schemes -> one model per engine and
scheme. Targets that share a scheme (as an engine sees it) share a file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from edgeft.errors import EdgeftError
from edgeft.targets import Host, QuantizationScheme, TargetProfile, load_targets, this_host

ALL_CPU = "all-cpu"


@dataclass(frozen=True)
class Int8Plan:
    """One int8 model to make: an engine, the scheme it follows, the targets it is for."""

    engine: str
    scheme: QuantizationScheme
    targets: tuple[str, ...]


class SchemeView(Protocol):
    """A quantizer class, as far as planning needs it: which part of a scheme its engine
    follows (``Int8Quantizer.engine_scheme``)."""

    def engine_scheme(self, scheme: QuantizationScheme) -> QuantizationScheme: ...


def is_cpu_target(profile: TargetProfile) -> bool:
    """A profile that needs no accelerator: CPU device and CPU execution provider only."""
    need = profile.requires
    return not need.openvino_devices and not need.onnxruntime_providers


def plan_int8_models(
    engines: Sequence[str],
    targets: Sequence[str] = (),
    scheme: QuantizationScheme | None = None,
    host: Host | None = None,
    engine_scheme: Mapping[str, SchemeView] | None = None,
) -> list[Int8Plan]:
    """The models for ``targets`` (names, or ``all-cpu``); without targets, one model per engine
    in ``scheme`` (default: this host's), for the profiles this host matches.

    ``engine_scheme`` maps an engine to its quantizer class, whose ``engine_scheme`` says which
    part of a scheme that engine follows (so two targets may share its file)."""
    profiles = load_targets()
    chosen = _resolve(targets, profiles)
    plans: dict[tuple[str, QuantizationScheme], list[str]] = {}
    if not chosen:
        scheme = scheme or QuantizationScheme.for_host(host)
        here = [
            name
            for name, p in profiles.items()
            if not p.mismatches(host or this_host()) and _scheme_of(p) == scheme
        ]
        for engine in engines:
            plans[(engine, _engine_view(engine, scheme, engine_scheme))] = here
    for profile in chosen:
        wanted = [e for e in engines if e in profile.engines]
        if not wanted:
            raise EdgeftError(
                f"target {profile.name} runs {', '.join(profile.engines)}, not {', '.join(engines)}"
            )
        for engine in wanted:
            view = _engine_view(engine, scheme or _scheme_of(profile), engine_scheme)
            plans.setdefault((engine, view), []).append(profile.name)
    return [Int8Plan(e, s, tuple(names)) for (e, s), names in plans.items()]


def _resolve(names: Sequence[str], profiles: dict[str, TargetProfile]) -> list[TargetProfile]:
    out: list[TargetProfile] = []
    for name in names:
        if name == ALL_CPU:
            out += [p for p in profiles.values() if is_cpu_target(p)]
        elif name in profiles:
            out.append(profiles[name])
        else:
            raise EdgeftError(f"unknown target {name!r}; choose {', '.join([*profiles, ALL_CPU])}")
    return list({p.name: p for p in out}.values())


def _scheme_of(profile: TargetProfile) -> QuantizationScheme:
    return QuantizationScheme.from_dict(profile.quantization)


def _engine_view(
    engine: str, scheme: QuantizationScheme, engine_scheme: Mapping[str, SchemeView] | None
) -> QuantizationScheme:
    quantizer = (engine_scheme or {}).get(engine)
    return quantizer.engine_scheme(scheme) if quantizer else scheme

"""Which of a bundle's models this host runs: the one rule behind ``Predictor``, ``predict``,
``serve``, ``validate`` and ``bench``.

``precision="auto"`` takes the int8 model whose scheme this host computes faithfully, preferring
one made for a target profile this host matches, then one of the host's own scheme, then the
more precise; an int8 model whose scheme saturates here, or a QAT candidate never held to the
budget, is never taken automatically. Where no int8 model fits, fp32 runs and ``notes`` say why.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeft.bundle import Bundle, Manifest, ModelEntry
from edgeft.errors import EdgeftError
from edgeft.runtime.engines import EngineSession, open_session, session_class
from edgeft.targets import Host, QuantizationScheme, TargetProfile, load_targets, this_host

PRECISION_CHOICES = ("auto", "int8", "fp32")


@dataclass(frozen=True)
class ModelChoice:
    entry: ModelEntry
    notes: list[str] = field(default_factory=list)  # models passed over, and why


def int8_mismatch(entry: ModelEntry, host: Host | None = None) -> str | None:
    """Why ``entry`` (an int8 model) should not run on ``host``; None when it may."""
    if entry.candidate:
        return "a QAT export never held to the accuracy budget (run `edgeft quantize`)"
    scheme = entry.int8_scheme
    return scheme.saturates_on(host) if scheme else None


def engine_installed(engine: str) -> bool:
    """Whether the engine's Python package is importable here (each is named as its module)."""
    return importlib.util.find_spec(engine) is not None


def choose_model(
    manifest: Manifest,
    engine: str = "auto",
    precision: str = "auto",
    host: Host | None = None,
    allow_mismatch: bool = False,
    engines: Sequence[str] | None = None,
) -> ModelChoice:
    """The model to run; ``engines`` limits the choice (a target profile's engines)."""
    if precision not in PRECISION_CHOICES:
        raise EdgeftError(f"precision must be one of {', '.join(PRECISION_CHOICES)}")
    host = host or this_host()
    allowed = [
        e
        for e in dict.fromkeys(m.engine for m in manifest.models)
        if engine in ("auto", e) and (engines is None or e in engines)
    ]
    if engine == "auto":
        allowed = [e for e in allowed if engine_installed(e)] or allowed
    notes: list[str] = []
    int8: list[ModelEntry] = []
    if precision != "fp32":
        int8 = [m for m in manifest.models if m.precision == "int8" and m.engine in allowed]
        fitting = [m for m in int8 if int8_mismatch(m, host) is None]
        for skipped in (m for m in int8 if m not in fitting):
            notes.append(f"{skipped.label} not run: {int8_mismatch(skipped, host)}")
        if fitting:
            return ModelChoice(_best_for(fitting, host), notes)
        mismatched = [m for m in int8 if not m.candidate]
        if precision == "int8":
            if allow_mismatch and mismatched:
                chosen = mismatched[0]
                return ModelChoice(chosen, [*notes, f"running {chosen.label} anyway (asked to)"])
            hint = " (--allow-mismatch runs it anyway)" if mismatched else ""
            raise EdgeftError(
                "no int8 model of this bundle fits this host"
                + (f": {'; '.join(notes)}{hint}" if notes else " (it has none)")
                + _hosts_for(int8)
            )
        if int8:
            notes.append("running fp32 instead")
    fp32 = [m for m in manifest.models if m.precision == "fp32" and m.engine in allowed]
    if not fp32:
        have = ", ".join(m.label for m in manifest.models) or "none"
        raise EdgeftError(
            f"bundle has no model this host can run with engine {engine} (has: {have})"
            + (f"; {'; '.join(notes)}" if notes else "")
            + _hosts_for(int8)
        )
    return ModelChoice(fp32[0], notes)


def open_chosen_model(
    bundle: Bundle,
    engine: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
    target: TargetProfile | None = None,
    allow_mismatch: bool = False,
    host: Host | None = None,
    entry: ModelEntry | None = None,
    **settings: object,
) -> tuple[ModelChoice, EngineSession]:
    """``choose_model``'s model of ``bundle`` (or the given ``entry``: an evaluation of each
    model in turn), opened with the target's engine settings (``threads`` overrides the
    target's count; ``settings`` add engine settings): what every task's runtime starts from."""
    if engine != "auto":
        session_class(engine)  # an unknown or missing engine is named before anything loads
    if target and engine not in ("auto", *target.engines):
        raise EdgeftError(f"target {target.name} does not run {engine}")
    choice = (
        ModelChoice(entry)
        if entry is not None
        else choose_model(
            bundle.manifest,
            engine,
            precision,
            host=host,
            allow_mismatch=allow_mismatch,
            engines=list(target.engines) if target else None,
        )
    )
    merged: dict[str, Any] = (
        target.session_settings(choice.entry.engine) if target else {}
    ) | settings
    if threads:
        merged["threads"] = threads
    session = open_session(
        choice.entry.engine,
        bundle.path_of(choice.entry),
        precision=choice.entry.precision,
        **merged,
    )
    return choice, session


def _best_for(fitting: list[ModelEntry], host: Host) -> ModelEntry:
    """Made for a target this host matches, then of the host's own scheme, then 8-bit weights
    over 7-bit ones (the more precise of two models that both compute faithfully here)."""
    profiles = load_targets() if any(m.targets for m in fitting) else {}
    own = QuantizationScheme.for_host(host)

    def rank(entry: ModelEntry) -> tuple[bool, bool, bool]:
        for_here = any(
            name in profiles and not profiles[name].mismatches(host) for name in entry.targets
        )
        scheme = entry.int8_scheme
        return (not for_here, scheme != own, scheme is not None and scheme.avoids_saturation)

    return min(fitting, key=rank)


def _hosts_for(entries: list[ModelEntry]) -> str:
    targets = sorted({t for m in entries for t in m.targets})
    return f"; its int8 models are for {', '.join(targets)}" if targets else ""

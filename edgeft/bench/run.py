"""``benchmark_bundle``: every model of a bundle on one target, measured side by side.

Models are timed in interleaved rounds (each gets a slice of the duration in turn), so a noisy
neighbour or a thermal change hits them all alike and the ratios stay fair.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.progress import Progress

from edgeft.bench.inputs import benchmark_inputs
from edgeft.bench.latency import LatencyStats, summarise, time_calls
from edgeft.bench.probe import probe_model
from edgeft.bundle import Bundle
from edgeft.bundle.manifest import Manifest, ModelEntry
from edgeft.errors import EdgeftError
from edgeft.runtime.engines import EngineSession, session_class
from edgeft.runtime.model_choice import int8_mismatch
from edgeft.runtime.task_predictor import open_model_session
from edgeft.targets import Host, TargetProfile, host_fingerprint, this_host

ROUNDS = 3
WARMUP_CALLS = 10
DEFAULT_PRECISION = "engine default"


@dataclass
class ModelBenchmark:
    """One model (engine x precision, and for OpenVINO fp32 also its engine-default run);
    ``variant`` names an int8 model's scheme or that engine-default run."""

    engine: str
    precision: str
    variant: str
    size_mb: float
    latency: dict[int, LatencyStats] = field(default_factory=dict)
    samples_ms: dict[int, list[float]] = field(default_factory=dict)
    throughput_mode_ips: float | None = None
    cold_start_ms: float | None = None
    peak_rss_mb: float | None = None
    accuracy: float | None = None

    @property
    def label(self) -> str:
        return f"{self.engine} {self.precision}" + (f" ({self.variant})" if self.variant else "")


@dataclass
class BenchmarkRun:
    created: str
    bundle: str
    target: str
    host: dict[str, Any]
    batches: list[int]
    duration_s: float
    models: list[ModelBenchmark]
    skipped: list[dict[str, str]] = field(default_factory=list)

    def latency_rows(self) -> list[dict[str, Any]]:
        """p50 per model and batch, keyed as the results database's rows are."""
        return [
            {"model": m.label, "engine": m.engine, "precision": m.precision,
             "variant": m.variant, "batch": batch, "p50_ms": stats.p50_ms, "target": self.target}
            for m in self.models
            for batch, stats in m.latency.items()
        ]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for model, raw in zip(self.models, out["models"], strict=True):
            raw["latency"] = {str(b): s.to_dict() for b, s in model.latency.items()}
            raw["samples_ms"] = {str(b): v for b, v in model.samples_ms.items()}
        return out


def slower_int8(run_rows: list[dict[str, Any]]) -> list[str]:
    """A warning for each int8 model of a run whose p50 at the smallest batch is above its
    engine's fp32 model's (the bundle's model, not OpenVINO's engine-default run of it)."""
    batch = min(r["batch"] for r in run_rows)
    at_batch = [r for r in run_rows if r["batch"] == batch]
    fp32 = {r["engine"]: r for r in at_batch if r["precision"] == "fp32" and not r["variant"]}
    warnings = []
    for row in at_batch:
        base = fp32.get(row["engine"])
        if row["precision"] != "int8" or base is None or row["p50_ms"] <= base["p50_ms"]:
            continue
        warnings.append(
            f"{row['model']} runs {row['p50_ms'] / base['p50_ms']:.3g}x slower than its fp32 on "
            f"{row['target']} (p50 {row['p50_ms']:.3g} vs {base['p50_ms']:.3g} ms at batch "
            f"{batch}): ship fp32 for this engine or quantize on the box "
            f"(edgeft quantize --target {row['target']})"
        )
    return warnings


def recorded_accuracy(manifest: Manifest, entry: ModelEntry) -> float | None:
    """The validation accuracy the quantizer measured through the runtime, if any."""
    if "accuracy" in entry.metrics.get("val", {}):
        return float(entry.metrics["val"]["accuracy"])
    for other in manifest.models:
        if other.engine == entry.engine and "accuracy" in other.metrics.get("val_fp32", {}):
            return float(other.metrics["val_fp32"]["accuracy"])
    return None


def _candidates(
    bundle: Bundle, target: TargetProfile, host: Host, skipped: list[dict[str, str]]
) -> list[tuple[ModelEntry, str]]:
    """The models to time; int8 models this host would not run (``choose_model``'s rule) go to
    ``skipped`` with the reason."""
    has_bf16 = bool(host.flags & {"avx512_bf16", "amx_bf16"})
    out = []
    for entry in bundle.manifest.models:
        if entry.engine not in target.engines:
            continue
        if entry.precision == "int8" and (why := int8_mismatch(entry, host)):
            skipped.append({"model": entry.label, "reason": why})
            continue
        session_class(entry.engine)  # a missing engine is named, not skipped silently
        scheme = entry.int8_scheme
        out.append((entry, scheme.key if scheme else ""))  # two int8 models: told apart by scheme
        if entry.engine == "openvino" and entry.precision == "fp32" and has_bf16:
            out.append((entry, DEFAULT_PRECISION))
    if not out:
        raise EdgeftError(
            f"bundle has no model for target {target.name}'s engines ({', '.join(target.engines)})"
        )
    return out


def _open(
    bundle: Bundle, target: TargetProfile, entry: ModelEntry, variant: str, hint: str | None = None
) -> EngineSession:
    settings = target.session_settings(entry.engine)
    if hint and entry.engine == "openvino":
        settings["hint"] = hint
    return open_model_session(
        bundle, entry, engine_default_precision=variant == DEFAULT_PRECISION, **settings
    )


def benchmark_bundle(
    bundle: Bundle,
    target: TargetProfile,
    batches: tuple[int, ...] = (1,),
    duration_s: float = 5.0,
    processes: bool = True,
    progress: Progress | None = None,
) -> BenchmarkRun:
    """Latency at each batch size, throughput in the engine's throughput mode, and (with
    ``processes``) cold start and peak memory in fresh processes, for every model."""
    host = this_host()
    skipped: list[dict[str, str]] = []
    chosen = _candidates(bundle, target, host, skipped)
    sessions = [_open(bundle, target, entry, variant) for entry, variant in chosen]
    results = [
        ModelBenchmark(
            engine=entry.engine,
            precision=entry.precision,
            variant=variant,
            size_mb=bundle.size_of(entry) / 1e6,
            accuracy=recorded_accuracy(bundle.manifest, entry),
        )
        for entry, variant in chosen
    ]
    steps = len(chosen) * (len(batches) * ROUNDS + 1 + int(processes))
    task = progress.add_task(f"benchmark on {target.name}", total=steps) if progress else None

    def advance() -> None:
        if progress is not None and task is not None:
            progress.advance(task)

    for batch in batches:
        inputs = benchmark_inputs(bundle, batch)
        for session in sessions:
            for _ in range(WARMUP_CALLS):
                session.run(inputs)
        times: list[list[float]] = [[] for _ in sessions]
        for _ in range(ROUNDS):
            for i, session in enumerate(sessions):
                times[i] += time_calls(session, inputs, duration_s / ROUNDS, min_calls=5)
                advance()
        for result, seconds in zip(results, times, strict=True):
            result.latency[batch] = summarise(seconds, batch)
            result.samples_ms[batch] = [round(t * 1000, 4) for t in seconds]
    largest = benchmark_inputs(bundle, max(batches))
    for (entry, variant), result in zip(chosen, results, strict=True):
        session = _open(bundle, target, entry, variant, hint="THROUGHPUT")
        session.run(largest)
        result.throughput_mode_ips = session.throughput(largest, duration_s)
        advance()
        if processes:
            settings = target.session_settings(entry.engine)
            if variant == DEFAULT_PRECISION:
                settings["engine_default_precision"] = True
            probe = probe_model(bundle.root, entry, 1, settings)
            result.cold_start_ms, result.peak_rss_mb = probe.cold_start_ms, probe.peak_rss_mb
            advance()
    return BenchmarkRun(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        bundle=str(bundle.root),
        target=target.name,
        host=host_fingerprint(host),
        batches=list(batches),
        duration_s=duration_s,
        models=results,
        skipped=skipped,
    )

"""``edgeft quantize``: an fp32 bundle -> a bundle that adds int8 models within an accuracy budget.

One int8 model per engine and per int8 scheme the targets need (``edgeft.quantize.plan``), each
held to the budget on this host, in exact arithmetic where this host's own int8 kernels would
saturate on the scheme. The input bundle is only read. The output is staged and renamed into
place, so an interrupted run leaves no half-written bundle, and an over-budget model is never
written at all; an engine or scheme that fits is written even when another does not, and the
manifest says which failed and why.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console

from edgeft.bundle import (
    Bundle,
    ModelEntry,
    copy_bundle_files,
    model_files,
    stage_bundle,
    write_manifest,
)
from edgeft.bundle.manifest import (
    OVER_BUDGET,
    SLOWER,
    BestCandidate,
    ClassDelta,
    Confirmation,
    DropInterval,
    Int8Details,
    Int8Failure,
)
from edgeft.engine_registry import ENGINES
from edgeft.errors import EdgeftError
from edgeft.evaluation.bundle_eval import per_class_deltas
from edgeft.quantize.backends.base import (
    Int8Quantizer,
    ModelType,
    quantizer_class,
)
from edgeft.quantize.budget import (
    Attempt,
    BudgetExceeded,
    BudgetOptions,
    BudgetResult,
    SlowerThanFp32,
    quantize_within_budget,
)
from edgeft.quantize.budget_data import BudgetData
from edgeft.quantize.calibration import METHODS, resolve_recipe, select_calibration
from edgeft.quantize.judging import Judges
from edgeft.quantize.model_family import graph_model_type
from edgeft.quantize.plan import Int8Plan, plan_int8_models
from edgeft.quantize.speed import int8_speed
from edgeft.quantize.tasks import budget_task
from edgeft.quantize.tasks.base import EngineReference
from edgeft.runtime.budget_metrics import resolution_note
from edgeft.runtime.scoring import headline
from edgeft.targets import QuantizationScheme, host_fingerprint


@dataclass(frozen=True)
class QuantizeConfig:
    """What ``edgeft quantize`` takes; ``data`` None means the dataset the bundle records.

    ``targets`` names target profiles (or ``all-cpu``); without them the int8 models follow
    ``scheme`` (default: this host's). ``budget_metric`` is ``accuracy``, ``macro-f1`` or
    ``recall:CLASS``."""

    engines: tuple[str, ...] = ENGINES
    calibration: str | int | None = None
    method: str = "auto"
    max_accuracy_drop: float = 1.0
    data: str | None = None
    scheme: QuantizationScheme | None = None
    targets: tuple[str, ...] = ()
    budget_metric: str = "accuracy"
    max_float_layers: int | None = None  # None: up to half the quantizable layers
    use_qat: bool = True  # try the bundle's QAT candidates (for their scheme) first
    allow_slower_int8: bool = False  # ship int8 that is slower than fp32 on this host

    def __post_init__(self) -> None:
        for engine in self.engines:
            quantizer_class(engine)
        if self.method not in (*METHODS, "auto"):
            raise EdgeftError(
                f"unknown calibration method {self.method!r}; choose {', '.join(METHODS)} or auto"
            )
        if self.max_accuracy_drop < 0:
            raise EdgeftError("--max-accuracy-drop must be at least 0 points")
        if self.max_float_layers is not None and self.max_float_layers < 0:
            raise EdgeftError("--max-float-layers must be at least 0")

    def plans(self) -> list[Int8Plan]:
        classes = {e: quantizer_class(e) for e in self.engines}
        return plan_int8_models(self.engines, self.targets, self.scheme, engine_scheme=classes)

    def budget(self) -> BudgetOptions:
        return BudgetOptions(
            self.method, self.max_accuracy_drop, self.max_float_layers, self.allow_slower_int8
        )


@dataclass(frozen=True)
class QuantizeRun:
    """What every engine and scheme of one ``quantize_bundle`` call shares: the fp32 bundle
    and its graph's model type, the config, each role's data, the int8 models being replaced
    (QAT candidates among them), the calibration set's record, and where candidates and the
    staged bundle are written."""

    bundle: Bundle
    model_type: ModelType
    config: QuantizeConfig
    data: BudgetData
    replaced: list[ModelEntry]
    calibration: dict[str, Any]
    work: Path
    staging: Path
    console: Console
    shown: tuple[str, ...]  # the task's figures a model's metrics record


def quantize_bundle(
    source: str | Path,
    out: str | Path,
    config: QuantizeConfig,
    overwrite: bool = False,
    console: Console | None = None,
) -> Bundle:
    console = console or Console()
    bundle = Bundle.load(source)
    manifest = bundle.manifest
    task = budget_task(manifest)
    plans = config.plans()
    dataset = task.dataset(bundle, config.data)
    config = replace(config, budget_metric=task.metric(config.budget_metric, bundle, dataset))
    calibration = select_calibration(resolve_recipe(config.calibration), dataset)
    for warning in calibration.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    planned = {p.engine for p in plans}
    data = BudgetData.prepare(
        bundle, dataset, calibration.items, config.max_accuracy_drop, planned, console,
        task.reference, task.unlabelled_items,
    )  # fmt: skip
    replaced = [m for m in manifest.models if m.precision == "int8" and m.engine in planned]
    entries = [m for m in manifest.models if m not in replaced]
    failures: list[Int8Failure] = []
    host = host_fingerprint()
    with (
        tempfile.TemporaryDirectory(prefix="edgeft-quantize-") as work,
        stage_bundle(out, overwrite=overwrite) as staging,
    ):
        copy_bundle_files(bundle, staging, keep=entries)
        run = QuantizeRun(
            bundle,
            graph_model_type(bundle.path_of(manifest.model("onnxruntime", "fp32"))),
            config,
            data,
            replaced,
            calibration.describe(),
            Path(work),
            staging,
            console,
            task.shown,
        )
        made = 0
        for plan in plans:
            try:
                entry = _quantize_one(run, plan)
            except BudgetExceeded as exc:
                console.print(f"[red]{plan.scheme.key}:[/] {exc}", highlight=False)
                failures.append(_failure(source, plan, exc, config))
                continue
            entries.append(replace(entry, validated_on=host))
            made += 1
        if not made:
            raise NoInt8Model(failures)
        recorded = [failure.to_dict() for failure in failures]
        new_manifest = replace(
            manifest,
            models=entries,
            provenance=manifest.provenance
            | {"quantized_from": str(source), "int8_failures": recorded},
        )
        write_manifest(staging, task.record_outputs(staging, new_manifest))
    return Bundle.load(out)


class NoInt8Model(EdgeftError):
    """Every planned int8 model broke the budget or ran slower than fp32: nothing was written.

    ``int8_failures`` says why for each; ``failures`` holds the same as the manifest would
    store them."""

    def __init__(self, failures: list[Int8Failure]) -> None:
        lines = [
            f"{f.reason}\n    best: {_best_text(f.best)}; to accept it: {f.command}"
            for f in failures
        ]
        super().__init__(
            "no int8 model was accepted; nothing was written.\n  " + "\n  ".join(lines)
        )
        self.int8_failures = failures
        self.failures = [failure.to_dict() for failure in failures]


def _confirm(
    quantizer: Int8Quantizer,
    path: Path,
    accepted: Attempt,
    config: QuantizeConfig,
    confirmation: EngineReference,
) -> Confirmation:
    """The accepted model (at ``path``) on the confirmation slice; over budget there, it is
    removed and the engine and scheme count as failed."""
    drop, scores = confirmation.validator(config.budget_metric)(path)
    assert scores.predicted is not None
    interval = confirmation.drop_interval(scores.predicted, config.budget_metric)
    if drop > config.max_accuracy_drop:
        for file in quantizer.files_of(path):
            file.unlink(missing_ok=True)
        name = f"{accepted.setting} on the confirmation slice"
        raise BudgetExceeded(
            quantizer.engine,
            config.max_accuracy_drop,
            [Attempt(name, accepted.keep_float, drop, scores)],
        )
    return Confirmation(len(confirmation.data), round(drop, 3), interval)


def _best_text(best: BestCandidate | None) -> str:
    if best is None:
        return "none (every setting failed)"
    floats = f" + {best.float_layers} float layers" if best.float_layers else ""
    return f"{best.setting}{floats}, drop {best.drop:.2f} pt"


def _quantize_one(run: QuantizeRun, plan: Int8Plan) -> ModelEntry:
    """One engine and scheme through the budget loop, its model written into ``run.staging``:
    the search ranks the layers kept in float on ``run.data.unlabelled`` where it exists, and
    ``run.data.confirmation`` has the last word on the model the search accepted."""
    bundle, config, console = run.bundle, run.config, run.console
    engine, scheme = plan.engine, plan.scheme
    folder = run.work / f"{engine}-{scheme.key}"
    folder.mkdir()
    quantizer = quantizer_class(engine)(
        bundle.path_of(bundle.manifest.model(engine, "fp32")),
        run.data.calibration,
        scheme,
        folder,
        run.data.search.data,
        run.model_type,
        budget_metric=config.budget_metric,
        exact=scheme.saturates_on() is not None,
    )
    exact = quantizer.exact
    if exact:
        console.print(
            f"{engine} {scheme.key}: this host's int8 kernels would saturate on it; the budget is "
            "checked in exact int8 arithmetic (run `edgeft validate` on the box)"
        )
    # each role's fp32 reference for this engine, its int8 candidates run as the budget runs them
    validation = run.data.search.for_engine(engine, exact)
    unlabelled, confirmation = (
        None if role is None else role.for_engine(engine, exact)
        for role in (run.data.unlabelled, run.data.confirmation)
    )
    qat = [
        m
        for m in run.replaced
        if m.engine == engine and m.candidate and m.int8_scheme in (None, scheme)
    ]
    ready = {"qat": _copy_model(bundle, qat[0], folder / "qat")} if qat and config.use_qat else {}
    first = {name: array[:1] for name, array in validation.data.batches[0].items()}
    judges = Judges(
        validation.validator(config.budget_metric),
        unlabelled.ranker() if unlabelled is not None else None,
        # not timed where this host does not run the scheme's kernels
        None if exact else partial(int8_speed, engine, fp32_path=quantizer.fp32_path, inputs=first),
    )
    out = run.staging / quantizer.int8_file
    result = quantize_within_budget(quantizer, out, config.budget(), judges, console, ready)
    accepted = result.accepted
    fp32_scores = validation.scores()
    rewrites = {} if accepted.setting in ready else quantizer.rewrites
    interval = _drop_interval(result, validation, config)
    note = (
        None
        if interval is None
        else resolution_note(len(validation.data), config.max_accuracy_drop, interval.to_dict())
    )
    confirmed = (
        None if confirmation is None else _confirm(quantizer, out, accepted, config, confirmation)
    )
    if accepted.slower_than_fp32:
        assert accepted.speed is not None
        console.print(
            f"[yellow]warning:[/] {engine} int8 {scheme.key} runs slower than its fp32 on this "
            f"host ({accepted.speed.int8_p50_ms:.3f} ms vs "
            f"{accepted.speed.fp32_p50_ms:.3f} ms at batch 1), the fastest of the candidates "
            "within budget; shipped as --allow-slower-int8 asked"
        )
    agreement = unlabelled.agreement(out) if unlabelled is not None else None
    if note:
        console.print(f"[yellow]{engine} {scheme.key}:[/] {note}")
    labelled = validation.data.labels is not None
    details = Int8Details(
        setting=accepted.setting,
        method=config.method,
        max_accuracy_drop=config.max_accuracy_drop,
        val_drop_points=round(accepted.drop, 3),
        budget_metric=config.budget_metric if labelled else "agreement",
        per_class_delta_points={
            name: ClassDelta(**delta)
            for name, delta in per_class_deltas(fp32_scores, accepted.scores.metrics).items()
        },
        kept_float=accepted.keep_float,
        attempts=[a.summary() for a in result.attempts],
        val_drop_interval=interval,
        budget_resolution=note,
        confirmation=confirmed,
        model_type=quantizer.model_type,
        speed=accepted.speed,
        unlabelled=agreement,
        graph_rewrites=rewrites,
        exact_arithmetic=exact,
        calibration=run.calibration,
        extra=dict(accepted.scores.record),
    )
    return ModelEntry(
        quantizer.int8_file,
        engine,
        "int8",
        metrics={
            "val": accepted.scores.headline(run.shown),
            "val_fp32": headline(fp32_scores, run.shown),
        },
        details=details.to_dict(),
        scheme=scheme.to_dict(),
        targets=list(plan.targets),
    )


def _failure(
    source: str | Path, plan: Int8Plan, exc: BudgetExceeded, config: QuantizeConfig
) -> Int8Failure:
    """What the manifest and the error say about an engine and scheme that did not fit: the
    best candidate's figures and the ``edgeft quantize`` line that would accept it."""
    best = exc.best
    parts = [f"edgeft quantize {source} --out NEW_OUT --engine {plan.engine}"]
    if plan.targets:
        parts.append(f"--target {','.join(plan.targets)}")
    if config.calibration is not None:
        parts.append(f"--calibration {config.calibration}")
    if config.data is not None:
        parts.append(f"--data {config.data}")
    if isinstance(exc, SlowerThanFp32):
        parts.append("--allow-slower-int8")
    if best is not None and best.setting != "qat":
        parts.append(f"--method {_method_of(best.setting, config.method)}")
    if best is not None:
        parts.append(f"--max-accuracy-drop {best.drop + 0.005:.2f}")
        if best.keep_float:
            parts.append(f"--max-float-layers {len(best.keep_float)}")
    if config.budget_metric != "accuracy":
        parts.append(f"--budget-metric {config.budget_metric}")
    return Int8Failure(
        engine=plan.engine,
        scheme=plan.scheme.key,
        command=" ".join(parts),
        targets=list(plan.targets),
        best=None
        if best is None
        else BestCandidate(
            best.setting, len(best.keep_float), round(best.drop, 3), best.scores.headline()
        ),
        why=SLOWER if isinstance(exc, SlowerThanFp32) else OVER_BUDGET,
        reason=f"{plan.scheme.key} {exc}",
        attempts=[a.summary() for a in exc.attempts],
    )


def _method_of(setting: str, method: str) -> str:
    """The ``--method`` that tries ``setting`` first: a calibration method names its setting;
    an engine's own settings (NNCF's presets) come with ``auto``."""
    return setting if setting in METHODS else method


def _copy_model(bundle: Bundle, entry: ModelEntry, folder: Path) -> Path:
    """A copy of a bundle's model (and an IR's .bin) in ``folder``, to try as a candidate."""
    folder.mkdir(parents=True, exist_ok=True)
    source = bundle.path_of(entry)
    for file in model_files(source):
        shutil.copy2(file, folder / file.name)
    return folder / source.name


def _drop_interval(
    result: BudgetResult, validation: EngineReference, config: QuantizeConfig
) -> DropInterval | None:
    """The accepted model's paired drop on the search's labelled items; None without labels."""
    predicted = result.accepted.scores.predicted
    if validation.data.labels is None or predicted is None:
        return None
    return validation.drop_interval(predicted, config.budget_metric)

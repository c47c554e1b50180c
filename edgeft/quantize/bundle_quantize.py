"""``edgeft quantize``: an fp32 bundle -> a bundle that adds int8 models within an accuracy budget.

The input bundle is only read. The output is staged and renamed into place, so an interrupted
run leaves no half-written bundle, and an over-budget model is never written at all.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from edgeft.bundle import Bundle, ModelEntry, model_files, stage_bundle, write_manifest
from edgeft.errors import EdgeftError
from edgeft.evaluation.bundle_eval import per_class_deltas, recorded_dataset
from edgeft.evaluation.runtime_scoring import (
    HEADLINE,
    EncodedSplit,
    encode_items,
    encode_split,
    entry_logits,
    headline,
    score_logits,
)
from edgeft.quantize.backends.base import QUANTIZE_ENGINES, quantizer_class
from edgeft.quantize.budget import BudgetResult, make_validator, quantize_within_budget
from edgeft.quantize.calibration import resolve_recipe, select_calibration
from edgeft.quantize.scheme import METHODS, QuantizationScheme

_SHOWN = ("examples", *HEADLINE)


@dataclass(frozen=True)
class QuantizeConfig:
    """What ``edgeft quantize`` takes; ``data`` None means the dataset the bundle records."""

    engines: tuple[str, ...] = QUANTIZE_ENGINES
    calibration: str | int | None = None
    method: str = "auto"
    max_accuracy_drop: float = 1.0
    data: str | None = None
    scheme: QuantizationScheme | None = None
    max_float_layers: int | None = None  # None: up to half the quantizable layers
    use_qat: bool = True  # try the bundle's QAT int8 models before calibrating

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
    scheme = config.scheme or QuantizationScheme.for_host()
    dataset = recorded_dataset(bundle, config.data)
    calibration = select_calibration(resolve_recipe(config.calibration), dataset)
    for warning in calibration.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    with Progress(console=console, transient=True) as progress:
        calibration_data = encode_items(
            bundle, calibration.items, progress=progress, description="encoding calibration set"
        )
        if dataset is not None:
            validation = encode_split(bundle, dataset, "val", progress)
        else:
            console.print(
                "[yellow]warning:[/] no labelled data: the budget is top-1 agreement with fp32 on "
                "the calibration images"
            )
            validation = calibration_data
    replaced = [m for m in manifest.models if m.precision == "int8" and m.engine in config.engines]
    entries = [m for m in manifest.models if m not in replaced]
    with (
        tempfile.TemporaryDirectory(prefix="edgeft-quantize-") as work,
        stage_bundle(out, overwrite=overwrite) as staging,
    ):
        _copy_files(bundle, staging, keep=entries)
        for engine in config.engines:
            fp32 = manifest.model(engine, "fp32")
            fp32_logits = entry_logits(bundle, fp32, validation)
            quantizer = quantizer_class(engine)(
                bundle.path_of(fp32),
                calibration_data,
                scheme,
                Path(work),
                validation,
                "transformer" if manifest.task == "text-classification" else "cnn",
            )
            qat = [m for m in replaced if m.engine == engine and m.details.get("source") == "qat"]
            ready = (
                {"qat": _copy_model(bundle, qat[0], Path(work) / f"{engine}-qat")}
                if qat and config.use_qat
                else {}
            )
            result = quantize_within_budget(
                quantizer,
                config.method,
                staging / quantizer.int8_file,
                make_validator(engine, validation, fp32_logits),
                config.max_accuracy_drop,
                console,
                config.max_float_layers,
                ready,
            )
            fp32_scores = score_logits(fp32_logits, validation)
            rewrites = {} if result.variant in ready else quantizer.rewrites
            entries.append(
                ModelEntry(
                    quantizer.int8_file,
                    engine,
                    "int8",
                    metrics={
                        "val": headline(result.scores, _SHOWN),
                        "val_fp32": headline(fp32_scores, _SHOWN),
                    },
                    details=_details(result, fp32_scores, validation, scheme, config)
                    | {"calibration": calibration.describe(), "graph_rewrites": rewrites},
                )
            )
        new_manifest = replace(
            manifest,
            models=entries,
            provenance=manifest.provenance | {"quantized_from": str(source)},
        )
        write_manifest(staging, new_manifest)
    return Bundle.load(out)


def _copy_model(bundle: Bundle, entry: ModelEntry, folder: Path) -> Path:
    """A copy of a bundle's model (and an IR's .bin) in ``folder``, to try as a candidate."""
    folder.mkdir(parents=True, exist_ok=True)
    source = bundle.path_of(entry)
    for file in model_files(source):
        shutil.copy2(file, folder / file.name)
    return folder / source.name


def _copy_files(bundle: Bundle, staging: Path, keep: list[ModelEntry]) -> None:
    """Every file of the input bundle except the int8 models being replaced."""
    dropped = {
        file.as_posix()
        for m in bundle.manifest.models
        if m not in keep
        for file in model_files(Path(m.path))
    }
    for rel in bundle.manifest.files:
        if rel not in dropped:
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(bundle.path_of(rel), target)


def _details(
    result: BudgetResult,
    fp32_scores: dict[str, Any],
    validation: EncodedSplit,
    scheme: QuantizationScheme,
    config: QuantizeConfig,
) -> dict[str, Any]:
    return {
        "variant": result.variant,
        "method": config.method,
        "scheme": scheme.to_dict(),
        "max_accuracy_drop": config.max_accuracy_drop,
        "val_drop_points": round(result.drop, 3),
        "budget_metric": "accuracy" if validation.labels is not None else "agreement",
        "per_class_delta_points": per_class_deltas(fp32_scores, result.scores),
        "kept_float": result.keep_float,
        "attempts": [a.summary() for a in result.attempts],
    }

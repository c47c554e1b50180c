"""``edgeft finetune --task anomaly``: a PatchCore model fitted on good parts, in a run folder.

Fitting is feature extraction, not a training loop: every good training image through the
pretrained backbone once, a greedy coreset of the patches, then the validation items scored to
choose the scoring and the threshold (``calibrate``). The run folder is written whole or not
at all (staged, then renamed), so a refused or interrupted fit leaves nothing behind.

Run folder: ``run.json`` (what was fitted: backbone record, layers, preprocessing, dataset),
``recipe.json``, ``features.safetensors`` (the feature network export reads), ``bank.npy`` and
``embeddings.npy`` (the memory banks; ``embedding_groups.npy``, each good image's variant,
with ``--group-by``; ``gaussian_mean.npy`` and ``gaussian_precision.npy`` with
``--gaussians``), ``scoring.json`` (``AnomalySpec``), ``metrics.json``, and
the validation items' fitted distances (``validation.json``, ``validation_grids.npy``) that the
exported model is held to.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress

from edgeft.anomaly.calibrate import AUTO, ValidationDistances, calibrate
from edgeft.anomaly.elpv import inspection_source
from edgeft.anomaly.folder import (
    GOOD,
    InspectionFolder,
    check_images,
    images_in,
    read_inspection_folder,
    recorded_folder,
    variants_of,
)
from edgeft.anomaly.patchcore import PatchCoreModel, PatchCoreSettings, fit_patchcore
from edgeft.anomaly.taps import default_taps
from edgeft.atomic import staged_folder
from edgeft.bundle import ImagePreprocessing, sha256_file
from edgeft.bundle.anomaly_spec import SCORINGS, AnomalySpec
from edgeft.bundle.manifest import ANOMALY_TASK
from edgeft.errors import EdgeftError
from edgeft.train.checkpoint import save_weights
from edgeft.train.run_folder import METRICS, RECIPE, RUN
from edgeft.zoo import get_model

FEATURES = "features.safetensors"
BANK = "bank.npy"
EMBEDDINGS = "embeddings.npy"
EMBEDDING_GROUPS = "embedding_groups.npy"
GAUSSIAN_MEAN = "gaussian_mean.npy"
GAUSSIAN_PRECISION = "gaussian_precision.npy"
SCORING = "scoring.json"
VALIDATION = "validation.json"  # each validation item's fitted distances: what export must match
VALIDATION_GRIDS = "validation_grids.npy"


@dataclass(frozen=True)
class AnomalyRecipe:
    """Every knob of an anomaly fit. ``layers`` None takes the backbone's blocks at 1/8 and 1/16
    of the input (``default_taps``); ``scoring`` auto takes the best on validation when it
    holds labelled defects, else the mix; ``false_reject`` is the share of good validation parts
    the threshold may flag when no defects are labelled; without ``val/``, ``val_share`` of
    ``train/good`` (and ``defects_to_val`` of each ``test/<defect>``) become validation;
    ``group_by`` names the ``metadata.csv`` column that gives each good part's variant, whose
    good parts then give it its own scales (a part takes its nearest good image's variant);
    ``gaussians`` adds per-position Gaussians (PaDiM) over that many feature channels, on the
    patch grid averaged over ``gaussian_pool`` x ``gaussian_pool`` (per variant, with
    ``group_by``)."""

    data: str
    model: str = "mobilenet_v2"
    weights: str | None = None
    layers: tuple[str, ...] | None = None
    image_size: int = 224
    bank_size: int = 3000
    sample: int = 200_000
    scoring: str = AUTO
    false_reject: float = 0.01
    val_share: float = 0.1
    defects_to_val: float = 0.0
    map_sigma: float = 4.0
    seed: int = 0
    init_from: str | None = None  # a run to refit with ``data``'s new good parts added
    group_by: str | None = None
    gaussians: int | None = None
    gaussian_pool: int = 4

    def __post_init__(self) -> None:
        if not 0 < self.val_share < 1 or not 0 <= self.defects_to_val < 1:
            raise EdgeftError("--val-share must be in (0, 1) and --defects-to-val in [0, 1)")
        if not 0 <= self.false_reject < 1:
            raise EdgeftError("--false-reject must be a share in [0, 1)")
        if self.scoring not in (AUTO, *SCORINGS):
            raise EdgeftError(f"scoring {self.scoring!r}: choose {AUTO} or {', '.join(SCORINGS)}")
        if (self.gaussians is not None and self.gaussians < 1) or self.gaussian_pool < 1:
            raise EdgeftError("--gaussians (channels) and --gaussian-pool must be >= 1")
        if self.image_size < 32 or self.bank_size < 1 or self.sample < self.bank_size:
            raise EdgeftError("--image-size must be >= 32, and --bank-size between 1 and sample")

    def settings(self, taps: tuple[str, ...]) -> PatchCoreSettings:
        return PatchCoreSettings(
            taps=taps,
            image_size=self.image_size,
            bank_size=self.bank_size,
            sample=self.sample,
            seed=self.seed,
            gaussians=self.gaussians,
            gaussian_pool=self.gaussian_pool,
        )

    @classmethod
    def from_options(cls, options: Mapping[str, Any], given: Collection[str] = ()) -> AnomalyRecipe:
        """From command-line knobs: those named in ``given`` (typed by the user) that an anomaly
        fit has no use for are refused by name rather than silently ignored."""
        known = {f.name for f in fields(cls)}
        unused = sorted(set(given) - known - {"task", "out"})
        if unused:
            flags = ", ".join("--" + name.replace("_", "-") for name in unused)
            raise EdgeftError(f"{flags}: not used by --task anomaly (fitting has no training loop)")
        knobs = {k: v for k, v in options.items() if k in known and v is not None}
        if isinstance(knobs.get("layers"), str):
            knobs["layers"] = tuple(t.strip() for t in knobs["layers"].split(",") if t.strip())
        if "init_from" not in knobs:
            return cls(**knobs)
        knobs["init_from"] = str(knobs["init_from"])
        if "data" not in given:
            raise EdgeftError("--init-from needs --data: a folder of the new good parts")
        base = Path(knobs["init_from"]) / RECIPE
        if not base.is_file():
            raise EdgeftError(f"{knobs['init_from']}: not an anomaly run (no {RECIPE})")
        recorded = json.loads(base.read_text())
        fixed = sorted(k for k in ("model", "weights", "layers", "image_size")
                       if k in given and knobs[k] != recorded.get(k))  # fmt: skip
        if fixed:
            raise EdgeftError(f"refitting {knobs['init_from']} keeps its {', '.join(fixed)}")
        changes = {k: v for k, v in knobs.items() if k in given or k == "init_from"}
        return cls(**(recorded | {"layers": tuple(recorded["layers"])} | changes))


@dataclass
class AnomalyRun:
    """What a fit wrote and measured."""

    run_dir: Path
    spec: AnomalySpec
    report: dict[str, Any] = field(default_factory=dict)


def _describe(folder: InspectionFolder) -> dict[str, Any]:
    return {
        "kind": "inspection",
        "source": str(folder.root.resolve()),
        "train_good": len(folder.train),
        "val": len(folder.val),
        "val_defects": sum(i.is_defective for i in folder.val),
        "test": len(folder.test),
        "defects": folder.defects,
        "image_size": list(folder.size),
        "image_mode": folder.mode,
        "split": folder.val_recipe,
    }


def fit_anomaly(
    recipe: AnomalyRecipe, out: str | Path, console: Console | None = None
) -> AnomalyRun:
    """Fit on ``recipe.data``'s good training parts into the new run folder ``out``."""
    console = console or Console()
    out = Path(out)
    if out.exists():
        raise EdgeftError(f"{out} already exists; choose another --out")
    folder = _training_folder(recipe)
    entry = get_model(recipe.model, weights=recipe.weights)
    if not isinstance(entry.preprocessing, ImagePreprocessing):
        raise EdgeftError(f"{recipe.model} is a {entry.task} model; anomaly detection needs images")
    entry.check()
    groups: list[str] = []
    owners = None
    if recipe.group_by:
        roots = [folder.root, *([Path(recipe.data)] if recipe.init_from else [])]
        groups, owners = variants_of(folder.train, roots, recipe.group_by)
    backbone = entry.create()
    taps = recipe.layers or default_taps(backbone)
    started = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        model = fit_patchcore(
            backbone, folder.train, recipe.settings(taps), progress, entry.preprocessing, owners
        )
        fit_seconds = time.perf_counter() - started
        val = model.score([i.path for i in folder.val], progress)
    defective = np.array([i.is_defective for i in folder.val])
    spec, report = calibrate(
        ValidationDistances(val.maps, val.embedding, defective, val.group, val.gaussian),
        recipe.scoring,
        recipe.false_reject,
        groups,
        map_sigma=recipe.map_sigma,
        gaussian_channels=()
        if model.gaussians is None
        else tuple(model.gaussians.channels.tolist()),
        gaussian_pool=recipe.gaussian_pool,
    )
    report = {"fit_seconds": round(fit_seconds, 2), "bank_rows": len(model.bank)} | report
    if owners is not None:
        report["groups"] = {name: int((owners == i).sum()) for i, name in enumerate(groups)}
    run = {
        "task": ANOMALY_TASK,
        "model": entry.name,
        "architecture": entry.record(backbone),
        "layers": list(taps),
        "channels": model.network.channels,
        "preprocessing": asdict(model.preprocessing),
        "dataset": _describe(folder),
    }
    gaussian = [None] * len(folder.val) if val.gaussian is None else val.gaussian.tolist()
    fitted = {
        "items": [
            {
                "path": str(i.path.resolve()),
                "defect": i.defect,
                "patch": float(p),
                "embedding": float(e),
                "group": int(g),
            }
            | ({} if m is None else {"gaussian": m})
            for i, p, e, g, m in zip(
                folder.val, val.patch, val.embedding, val.group, gaussian, strict=True
            )
        ]
    }
    with staged_folder(out) as staging:
        _write_run(staging, model, recipe, run, spec, report)
        (staging / VALIDATION).write_text(json.dumps(fitted, indent=2) + "\n")
        np.save(staging / VALIDATION_GRIDS, val.maps.astype(np.float32), allow_pickle=False)
    return AnomalyRun(out, spec, report)


def _training_folder(recipe: AnomalyRecipe) -> InspectionFolder:
    """The folder to fit on; refitting, the earlier run's folder, split as it was, with the new
    good parts of ``recipe.data`` (its ``train/good/``, or a plain folder of images) joining the
    training images (those that copy a validation or test image are left out)."""
    if recipe.init_from is None:
        return read_inspection_folder(
            inspection_source(recipe.data), recipe.val_share, recipe.defects_to_val, recipe.seed
        )
    base = json.loads((Path(recipe.init_from) / RUN).read_text())
    folder = recorded_folder(base)
    new = Path(recipe.data)
    good = new / "train" / GOOD if (new / "train" / GOOD).is_dir() else new
    if not good.is_dir() or not (added := images_in(good)):
        raise EdgeftError(f"{good}: no new good parts (images) to add")
    held_out = {sha256_file(i.path) for i in [*folder.val, *folder.test]}
    kept = [p for p in added if sha256_file(p) not in held_out]
    check_images([*folder.train[:1], *kept], [])
    split = folder.val_recipe | {"refit_from": recipe.init_from, "added_good": len(kept)}
    return replace(folder, train=sorted({*folder.train, *kept}), val_recipe=split)


def _write_run(
    staging: Path,
    model: PatchCoreModel,
    recipe: AnomalyRecipe,
    run: dict[str, Any],
    spec: AnomalySpec,
    report: dict[str, Any],
) -> None:
    save_weights(model.network, staging / FEATURES)
    np.save(staging / BANK, model.bank.astype(np.float32), allow_pickle=False)
    np.save(staging / EMBEDDINGS, model.embeddings.astype(np.float32), allow_pickle=False)
    if model.embedding_groups is not None:
        np.save(staging / EMBEDDING_GROUPS, model.embedding_groups, allow_pickle=False)
    if model.gaussians is not None:
        np.save(staging / GAUSSIAN_MEAN, model.gaussians.mean, allow_pickle=False)
        np.save(staging / GAUSSIAN_PRECISION, model.gaussians.precision, allow_pickle=False)
    recipe_dict = asdict(replace(recipe, layers=tuple(run["layers"])))
    for name, content in (
        (RUN, run),
        (RECIPE, recipe_dict),
        (SCORING, spec.to_dict()),
        (METRICS, report),
    ):
        (staging / name).write_text(json.dumps(content, indent=2) + "\n")

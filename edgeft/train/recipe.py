"""The training recipe: every knob of a fine-tuning run, saved with the run to reproduce it."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from edgeft.errors import EdgeftError
from edgeft.train.run_folder import RECIPE

STRATEGIES = ("feature-extraction", "full", "progressive")
# Per task: the ELPV recipe (``benchmarks/finetune_elpv.py``) for images; for text encoders the
# usual BERT fine-tuning range (backbone 2e-5..5e-5, a few epochs), with a faster new head.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "image-classification": {"epochs": 12, "lr_head": 2e-3, "lr_backbone": 5e-4},
    "text-classification": {"epochs": 4, "lr_head": 1e-3, "lr_backbone": 5e-5},
}


@dataclass(frozen=True)
class Recipe:
    """Image defaults are the ELPV recipe (``benchmarks/finetune_elpv.py``, results in
    ``benchmarks/results/elpv_finetune.md``); ``epochs`` and the learning rates left None take the task's defaults (``for_task``).

    Learning rates are discriminative: the head trains at ``lr_head`` (above the backbone), and
    ``layer_decay`` < 1 further scales the backbone rate down per group towards the input. The
    default keeps one backbone rate, as the ELPV recipe does. ``crop_fraction`` is the share of the resized image the centre crop keeps: 1.0 (the
    default) shows the model the whole part or cell, since a defect at the edge is still a
    defect; None keeps the model's ImageNet framing (224 of 256). ``patience`` counts epochs without a better
    validation macro-F1 before stopping; ``unfreeze_patience`` is the same for progressive
    unfreezing's next thaw. ``qat`` adds quantization-aware training after the float phase:
    one pass over ``qat_images`` training images at ``qat_lr``. ``pretrained=False`` trains
    the same architecture from its random initialisation (full strategy only): the baseline that
    shows what transfer learning buys. ``init_from`` names a finished run to continue: its
    weights start the model and ``data`` holds newly labelled items that extend the run's
    recorded train and validation splits, its test split unchanged (``edgeft.data.extension``).
    """

    model: str
    data: str
    strategy: str = "full"
    epochs: int | None = None  # None: the task's default (TASK_DEFAULTS)
    batch_size: int = 32
    image_size: int | None = None
    crop_fraction: float | None = 1.0
    lr_head: float | None = None
    lr_backbone: float | None = None
    layer_decay: float = 1.0
    weight_decay: float = 0.05
    warmup_epochs: float = 0.5
    label_smoothing: float = 0.1
    patience: int = 6
    unfreeze_patience: int = 1
    class_weights: bool = True
    augment: bool = True
    precision: str = "auto"
    seed: int = 0
    skip_bad: bool = False
    weights: str | None = None
    qat: bool = False
    qat_images: int = 512
    qat_lr: float = 2e-5
    pretrained: bool = True
    init_from: str | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise EdgeftError(f"unknown strategy {self.strategy!r}; choose {', '.join(STRATEGIES)}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise EdgeftError(f"precision must be auto, fp32 or bf16, not {self.precision!r}")
        if self.crop_fraction is not None and not 0.3 <= self.crop_fraction <= 1.0:
            raise EdgeftError("crop_fraction must be between 0.3 and 1.0")
        if self.qat_images < 1 or self.qat_lr <= 0:
            raise EdgeftError("qat_images and qat_lr must be positive")
        if not self.pretrained and self.strategy != "full":
            raise EdgeftError(
                f"{self.strategy} keeps layers frozen, which only makes sense with pretrained "
                "weights; train from scratch with --strategy full"
            )
        if (self.epochs is not None and self.epochs < 1) or self.batch_size < 1:
            raise EdgeftError("epochs and batch size must be at least 1")

    def for_task(self, task: str) -> Recipe:
        """This recipe with the unset knobs filled in from ``TASK_DEFAULTS[task]``."""
        defaults = TASK_DEFAULTS[task]
        return replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], given: Collection[str] = ()) -> Recipe:
        """A recipe from command-line knobs (unknown names are ignored). A new run takes them all;
        a run continued with ``init_from`` keeps its own recipe, changed only by the knobs named
        in ``given`` (the ones the user typed), and needs ``data``: the newly labelled items."""
        knobs = {f.name: options[f.name] for f in fields(cls) if f.name in options}
        init_from = knobs.pop("init_from", None)
        if init_from is None:
            return cls(**knobs)
        changes = {k: v for k, v in knobs.items() if k in given}
        if "data" not in changes:
            raise EdgeftError("--init-from needs --data: the newly labelled items")
        return cls.from_run(init_from, **changes)

    @classmethod
    def from_run(cls, run_dir: str | Path, data: str | Path, **changes: Any) -> Recipe:
        """The recipe of the run in ``run_dir``, continued from its weights with the newly
        labelled ``data``; ``changes`` override its knobs, except the model its weights fit."""
        path = Path(run_dir) / RECIPE
        if not path.is_file():
            raise EdgeftError(f"{run_dir}: not a finetune run (no {RECIPE})")
        recipe = cls.from_file(path)
        moved = [
            k for k in ("model", "weights") if k in changes and changes[k] != getattr(recipe, k)
        ]
        if moved:
            raise EdgeftError(
                f"{run_dir} holds {recipe.model} weights; continuing it cannot change "
                f"{' or '.join(moved)}"
            )
        return replace(recipe, **changes, data=str(data), init_from=str(run_dir))

    @classmethod
    def from_file(cls, path: Path) -> Recipe:
        data: dict[str, Any] = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

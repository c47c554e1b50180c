"""``edgeft finetune``: a pretrained backbone -> a model for the user's small image or text dataset.

Strategies: ``feature-extraction`` (frozen backbone, features cached once, head trained in
seconds), ``full`` (everything trains, discriminative learning rates) and ``progressive`` (the
head first, then one more group from the top each time validation stalls). All share one epoch
loop: early stopping on validation macro-F1, the best checkpoint kept, state saved every epoch.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import edgeft.train.checkpoint as checkpoint
from edgeft.atomic import write_text_atomically
from edgeft.bundle import ImagePreprocessing, TextPreprocessing
from edgeft.data import ClassificationDataset, DatasetExtension, load_dataset
from edgeft.data.extension import EXTENSION_FILE
from edgeft.data.transforms import eval_transform, train_transform
from edgeft.errors import EdgeftError
from edgeft.runtime.classification_metrics import classification_metrics
from edgeft.runtime.encoders import TextEncoder
from edgeft.train.distributed import ProcessGroup
from edgeft.train.image_data import ImageExamples, drop_unreadable
from edgeft.train.optim import param_groups, thaw_top, train_mode, warmup_cosine
from edgeft.train.plots import plot_confusion, plot_curves
from edgeft.train.qat import quantization_aware_training
from edgeft.train.recipe import Recipe
from edgeft.train.run_folder import BEST, METRICS, MODEL, RECIPE, RUN, STATE
from edgeft.train.text_data import TextCollator
from edgeft.zoo import LayerGroup, get_model
from edgeft.zoo.huggingface_text import INPUT_NAMES, TOKENIZER_FILE

# Examples of one split -> batches of (inputs, labels); ``shuffle`` and ``augment`` for training.
MakeLoader = Callable[..., DataLoader]
_TASK_OF_KIND = {"image": "image-classification", "text": "text-classification"}


@dataclass
class RunResult:
    """``written`` is False in the processes of a distributed run that left the run folder
    (and the test and QAT steps) to rank 0."""

    run_dir: Path
    metrics: dict[str, Any]
    written: bool = True


def resized_spec(
    spec: ImagePreprocessing, image_size: int | None, crop_fraction: float | None = None
) -> ImagePreprocessing:
    """The model's spec at ``image_size`` with the centre crop covering ``crop_fraction`` of the
    resized shorter side (None keeps the model's own ratio, 224/256 for ImageNet models)."""
    size = image_size or spec.crop[0]
    fraction = crop_fraction if crop_fraction is not None else spec.crop[0] / spec.resize
    return replace(spec, crop=(size, size), resize=round(size / fraction))


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 where the device computes it natively; on a GPU without bf16, fp16 (with a
    gradient scaler, see ``_Trainer``); otherwise fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    fast_bf16 = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    return torch.bfloat16 if fast_bf16 else None


class _Trainer:
    """State shared by the epoch loop: model, data, loss, where to autocast, which process of
    the run this is (only rank 0 logs and writes)."""

    def __init__(
        self, recipe: Recipe, run_dir: Path, console: Console, group: ProcessGroup
    ) -> None:
        self.recipe, self.run_dir, self.console, self.group = recipe, run_dir, console, group
        self.device = group.device
        self.amp = _autocast_dtype(recipe.precision, self.device)
        # fp16 gradients underflow without loss scaling; bf16 and fp32 need none.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == torch.float16)
        log = run_dir / "train.log" if group.is_main else Path(os.devnull)
        self.log = open(log, "a")  # noqa: SIM115 - closed in finetune()

    def say(self, message: str) -> None:
        self.console.print(message)
        self.log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
        self.log.flush()

    def progress(self) -> Progress:
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )

    def autocast(self, enabled: bool = True) -> torch.autocast:
        return torch.autocast(
            self.device.type,
            dtype=self.amp or torch.float32,
            enabled=enabled and self.amp is not None,
        )

    def place(self, model: nn.Module) -> nn.Module:
        """The model on the device, its conv weights channels-last: oneDNN's native layout,
        which trained MobileNetV2 about a quarter faster on two CPU cores here."""
        # Module.to takes a device and memory_format together (as Tensor.to does); torch's stubs
        # list memory_format only on its own.
        return model.to(self.device, memory_format=torch.channels_last)  # type: ignore[call-overload]

    def inputs(self, x: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """A batch's model inputs on the device: one image tensor (channels-last, as the
        model), or a text's ids and mask."""
        return tuple(
            t.to(self.device, memory_format=torch.channels_last)
            if t.dim() == 4
            else t.to(self.device)
            for t in (x if isinstance(x, tuple | list) else (x,))
        )

    def predict(
        self, module: nn.Module, loader: DataLoader, fp32: bool = False
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Labels, predictions and mean loss (unweighted) over a loader, in eval mode.

        ``fp32`` turns autocast off: the reported test score is the fp32 model that is exported.
        """
        module.eval()
        labels, preds, losses = [], [], []
        with torch.no_grad(), self.autocast(enabled=not fp32):
            for x, y in loader:
                logits = module(*self.inputs(x)).float()
                losses.append(
                    nn.functional.cross_entropy(logits, y.to(self.device), reduction="sum").item()
                )
                labels.append(y.numpy())
                preds.append(logits.argmax(1).cpu().numpy())
        truth = np.concatenate(labels)
        return truth, np.concatenate(preds), sum(losses) / max(len(truth), 1)


def finetune(
    recipe: Recipe, out: str | Path, resume: bool = False, console: Console | None = None
) -> RunResult:
    """Train per ``recipe`` into the run folder ``out`` (or continue it with ``resume``); under
    torchrun, as one process of a data-parallel run (``edgeft.train.distributed``)."""
    group = ProcessGroup.from_environment()
    console = (console or Console()) if group.is_main else Console(quiet=True)
    run_dir = Path(out)
    if resume:
        if not (run_dir / STATE).is_file():
            raise EdgeftError(f"{run_dir}: nothing to resume (no {STATE})")
        recipe = Recipe.from_file(run_dir / RECIPE)
    elif run_dir.exists():
        raise EdgeftError(
            f"{run_dir} already exists; pass --resume to continue it or choose another --out"
        )
    with group.main_first():  # a built-in dataset is written to disk once
        dataset = _training_data(recipe, run_dir)
    entry = get_model(recipe.model, weights=recipe.weights)
    if entry.task != _TASK_OF_KIND[dataset.kind]:
        raise EdgeftError(
            f"{recipe.model} is a {entry.task} model; {dataset.source} holds {dataset.kind}s"
        )
    if recipe.qat and dataset.kind != "image":
        raise EdgeftError(
            "--qat is built for image models; text models go to int8 post-training "
            "(edgeft quantize), within the same accuracy budget"
        )
    if recipe.qat and group.distributed:
        raise EdgeftError(
            "--qat runs in one process: fine-tune under torchrun without it, then run "
            "edgeft quantize (or QAT in a single-process run)"
        )
    recipe = recipe.for_task(entry.task)
    if not resume:
        entry.check()
    if group.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    group.barrier()
    trainer = _Trainer(recipe, run_dir, console, group)
    try:
        return _run(trainer, entry, dataset, resume)
    except KeyboardInterrupt as exc:
        trainer.say("interrupted")
        raise EdgeftError(
            f"interrupted; the best checkpoint so far is in {run_dir / BEST}; "
            f"continue with: edgeft finetune --resume --out {run_dir}"
        ) from exc
    finally:
        trainer.log.close()
        group.close()


def _training_data(recipe: Recipe, run_dir: Path) -> ClassificationDataset:
    """The recipe's data; continuing a run, that run's recorded dataset extended with it."""
    if recipe.init_from is None:
        return load_dataset(recipe.data, seed=recipe.seed)
    base = Path(recipe.init_from)
    missing = [name for name in (RUN, MODEL) if not (base / name).is_file()]
    if missing:
        raise EdgeftError(f"{base}: not a finished finetune run (no {', '.join(missing)})")
    recorded = json.loads((base / RUN).read_text())["dataset"]
    extension = DatasetExtension(recorded, recipe.data, recipe.seed)
    return extension.load(str(run_dir / EXTENSION_FILE), load_dataset)


def _run(trainer: _Trainer, entry: Any, dataset: ClassificationDataset, resume: bool) -> RunResult:
    recipe, run_dir = trainer.recipe, trainer.run_dir
    skipped: list[str] = []
    splits = dict(dataset.splits)
    spec: ImagePreprocessing | TextPreprocessing
    if dataset.kind == "image":
        image_spec = resized_spec(entry.preprocessing, recipe.image_size, recipe.crop_fraction)
        spec = image_spec
        for split in ("train", "val", "test"):
            splits[split], bad = drop_unreadable(dataset.splits[split], recipe.skip_bad)
            skipped += bad
        if skipped:
            trainer.say(f"skipped {len(skipped)} unreadable image(s) (--skip-bad)")
        loader = _image_loaders(image_spec, recipe, trainer.group)
    else:
        text_spec: TextPreprocessing = entry.preprocessing
        spec = text_spec
    torch.manual_seed(recipe.seed)
    model = entry.create(len(dataset.classes), recipe.pretrained and not recipe.init_from)
    if not resume and trainer.group.is_main:
        for name, file in entry.run_files().items():
            shutil.copyfile(file, run_dir / name)
        write_text_atomically(run_dir / RECIPE, recipe.to_json())
        run_info = {
            "model": entry.name,
            "architecture": entry.record(model),
            "task": entry.task,
            "labels": dataset.classes,
            "preprocessing": asdict(spec),
            "dataset": dataset.describe(),
        }
        if recipe.init_from:
            run_info["init_from"] = recipe.init_from
            write_text_atomically(
                run_dir / EXTENSION_FILE, json.dumps(dataset.split_recipe, indent=2)
            )
            new = dataset.split_recipe["new_items"]
            trainer.say(
                f"continuing {recipe.init_from} with {new['items']} new item(s) from "
                f"{recipe.data}: {new['sizes']['train']} to train, {new['sizes']['val']} to val, "
                f"{len(new['dropped_copies'])} copies of old items dropped; test unchanged"
            )
        write_text_atomically(run_dir / RUN, json.dumps(run_info, indent=2))
    trainer.group.barrier()  # the others read the tokenizer rank 0 copied
    if dataset.kind == "text":
        encoder = TextEncoder(text_spec, run_dir / TOKENIZER_FILE, INPUT_NAMES)
        loader = _text_loaders(encoder, recipe, trainer.group)
    if recipe.init_from:
        checkpoint.load_weights(model, Path(recipe.init_from) / MODEL)
    model = trainer.place(model)
    groups = entry.layer_groups(model)
    train_loader = loader(splits["train"], shuffle=True, augment=recipe.augment)
    val_loader = loader(splits["val"])
    counts = np.bincount([e.label for e in splits["train"]], minlength=len(dataset.classes))
    weights = (
        counts.sum() / (len(counts) * np.maximum(counts, 1))
        if recipe.class_weights
        else np.ones(len(counts))
    )
    loss_fn = nn.CrossEntropyLoss(
        weight=torch.tensor(weights, dtype=torch.float32, device=trainer.device),
        label_smoothing=recipe.label_smoothing,
    )
    trainable: nn.Module = model
    started = time.perf_counter()
    if recipe.strategy == "feature-extraction":
        trainable, train_loader, val_loader, groups = _cached_features(
            trainer, model, groups, splits, loader
        )
    caching_seconds = time.perf_counter() - started
    history = _fit(
        trainer,
        model,
        trainable,
        groups,
        train_loader,
        val_loader,
        loss_fn,
        dataset.classes,
        resume,
    )
    training_seconds = caching_seconds + sum(h["seconds"] for h in history)
    trainer.group.barrier()  # the best checkpoint is written
    if not trainer.group.is_main:
        return RunResult(run_dir, {}, written=False)
    checkpoint.load_weights(model, run_dir / BEST)
    checkpoint.save_weights(model, run_dir / MODEL)
    test_loader = loader(splits["test"])
    truth, preds, _ = trainer.predict(model, test_loader, fp32=True)
    test = classification_metrics(truth, preds, dataset.classes)
    best = max(history, key=lambda h: h["val_macro_f1"])
    metrics = {
        "strategy": recipe.strategy,
        "history": history,
        "best_epoch": best["epoch"],
        "best_val": {k: best[k] for k in ("val_accuracy", "val_macro_f1", "val_loss")},
        "test": test,
        "training_seconds": round(training_seconds, 1),
        "trainable_params": max(h["trainable_params"] for h in history),
        "total_params": sum(p.numel() for p in model.parameters()),
        "skipped_files": skipped,
        "precision": str(trainer.amp or torch.float32).removeprefix("torch."),
    }
    plot_curves(history, run_dir / "curves.png")
    plot_confusion(test, run_dir / "confusion.png")
    trainer.say(
        f"test accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f} (best epoch {best['epoch']})"
    )
    if recipe.qat:
        metrics["qat"] = quantization_aware_training(
            trainer,
            copy.deepcopy(model),
            splits["train"],
            loader,
            loader(splits["val"]),
            test_loader,
            loss_fn,
            dataset.classes,
        )
    write_text_atomically(run_dir / METRICS, json.dumps(metrics, indent=2))
    return RunResult(run_dir, metrics)


def _batches(
    dataset: Any,
    recipe: Recipe,
    shuffle: bool,
    group: ProcessGroup,
    collate: Callable | None = None,
) -> DataLoader:
    """Batches in the recipe's size; shuffling is seeded so a run repeats exactly. A shuffled
    (training) split in a distributed run: this process's shard, in its share of the batch."""
    sampler = group.sampler(dataset, recipe.seed) if shuffle else None
    return DataLoader(
        dataset,
        batch_size=recipe.batch_size if sampler is None else group.local_batch(recipe.batch_size),
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        generator=torch.Generator().manual_seed(recipe.seed),
        collate_fn=collate,
    )


def _image_loaders(spec: ImagePreprocessing, recipe: Recipe, group: ProcessGroup) -> MakeLoader:
    def loader(examples: list, shuffle: bool = False, augment: bool = False) -> DataLoader:
        transform = train_transform(spec) if augment else eval_transform(spec)
        return _batches(ImageExamples(examples, transform), recipe, shuffle, group)

    return loader


def _text_loaders(encoder: TextEncoder, recipe: Recipe, group: ProcessGroup) -> MakeLoader:
    def loader(examples: list, shuffle: bool = False, augment: bool = False) -> DataLoader:
        return _batches(list(examples), recipe, shuffle, group, TextCollator(encoder))

    return loader


def _cached_features(
    trainer: _Trainer, model: nn.Module, groups: list, splits: dict, loader: MakeLoader
):
    """Run the frozen backbone once per example; the head then trains on the cached features."""
    head = (
        groups[-1].modules[0]
        if len(groups[-1].modules) == 1
        else nn.Sequential(*groups[-1].modules)
    )
    captured: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(
        lambda _m, args: captured.append(args[0].detach().float().cpu())
    )
    loaders = []
    sizes: list[int] = []
    try:
        for split in ("train", "val"):
            captured.clear()
            examples = splits[split]
            trainer.predict(model, loader(examples))
            features = TensorDataset(torch.cat(captured), torch.tensor([e.label for e in examples]))
            sizes.append(len(features))
            loaders.append(_batches(features, trainer.recipe, split == "train", trainer.group))
    finally:
        hook.remove()
    trainer.say(f"cached {sizes[0]} train features of size {captured[0].shape[1]}")
    return head, loaders[0], loaders[1], [LayerGroup("head", (head,))]


def _fit(
    trainer, model, trainable, groups, train_loader, val_loader, loss_fn, classes, resume
) -> list[dict[str, Any]]:
    recipe, run_dir, group = trainer.recipe, trainer.run_dir, trainer.group
    progressive = recipe.strategy == "progressive"
    optimizer = torch.optim.AdamW(
        param_groups(
            groups, recipe.lr_head, recipe.lr_backbone, recipe.layer_decay, recipe.weight_decay
        )
    )
    steps = len(train_loader)
    scheduler = warmup_cosine(optimizer, round(recipe.warmup_epochs * steps), recipe.epochs * steps)
    state: dict[str, Any] = {
        "epoch": 0,
        "history": [],
        "thawed": 1 if progressive else len(groups),
        "best": -1.0,
        "stale": 0,
        "stale_since_thaw": 0,
    }
    if resume:
        state = checkpoint.load_progress(run_dir, model, optimizer, scheduler)
        trainer.say(f"resuming after epoch {state['epoch']}")
    wrapped: tuple[int, nn.Module] | None = None  # (groups thawed, the module DDP wraps)
    with trainer.progress() as bar:
        for epoch in range(state["epoch"] + 1, recipe.epochs + 1):
            trainable_params = thaw_top(groups, state["thawed"])
            if wrapped is None or wrapped[0] != state["thawed"]:
                wrapped = (state["thawed"], group.wrap(trainable))
            if isinstance(train_loader.sampler, DistributedSampler):
                train_loader.sampler.set_epoch(epoch)
            torch.manual_seed(recipe.seed * 1000 + epoch)
            task = bar.add_task(f"epoch {epoch}/{recipe.epochs}", total=steps)
            train_mode(trainable, groups)
            running, seen, started = 0.0, 0, time.perf_counter()
            for x, y in train_loader:
                y = y.to(trainer.device)
                with trainer.autocast():
                    loss = loss_fn(wrapped[1](*trainer.inputs(x)).float(), y)
                optimizer.zero_grad(set_to_none=True)
                trainer.scaler.scale(loss).backward()
                trainer.scaler.step(optimizer)
                trainer.scaler.update()
                scheduler.step()
                running, seen = running + loss.item() * len(y), seen + len(y)
                bar.update(
                    task,
                    advance=1,
                    description=f"epoch {epoch}/{recipe.epochs} loss {running / seen:.3f}",
                )
            bar.remove_task(task)
            running, seen = group.total([running, seen])
            truth, preds, val_loss = trainer.predict(trainable, val_loader)
            val = classification_metrics(truth, preds, classes)
            val_loss, val_accuracy, val_macro_f1 = group.from_main(
                [val_loss, val["accuracy"], val["macro_f1"]]
            )
            row = {
                "epoch": epoch,
                "steps": steps,
                "train_loss": running / seen,
                "val_loss": val_loss,
                "val_accuracy": val_accuracy,
                "val_macro_f1": val_macro_f1,
                "trainable_params": trainable_params,
                "seconds": round(time.perf_counter() - started, 1),
                "lr_head": optimizer.param_groups[-1]["lr"],
            }
            state["history"].append(row)
            improved = row["val_macro_f1"] > state["best"]
            if improved:
                state["best"], state["stale"], state["stale_since_thaw"] = row["val_macro_f1"], 0, 0
                if group.is_main:
                    checkpoint.save_weights(model, run_dir / BEST)
            else:
                state["stale"] += 1
                state["stale_since_thaw"] += 1
            trainer.say(
                f"epoch {epoch}: train loss {row['train_loss']:.4f}, val loss {val_loss:.4f}, "
                f"val acc {row['val_accuracy']:.4f}, val macro-F1 {row['val_macro_f1']:.4f}"
                f"{' (best)' if improved else ''}, {trainable_params:,} trainable, {row['seconds']} s"
            )
            state["epoch"] = epoch
            if (
                progressive
                and state["thawed"] < len(groups)
                and state["stale_since_thaw"] >= recipe.unfreeze_patience
            ):
                state["thawed"] += 1
                state["stale_since_thaw"] = 0
                trainer.say(f"val stalled: thawing {groups[-state['thawed']].name}")
            if group.is_main:
                checkpoint.save_progress(run_dir, model, optimizer, scheduler, state)
            all_thawed = state["thawed"] >= len(groups)
            if all_thawed and state["stale"] >= recipe.patience:
                trainer.say(f"early stop: no better val macro-F1 for {recipe.patience} epochs")
                break
    return state["history"]

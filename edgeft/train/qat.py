"""Quantization-aware training: fake int8 quantization inserted by NNCF, then a short, low-lr
fine-tune so the weights adapt to int8 rounding before the compression step.

NNCF's torch quantizers match the int8 scheme the OpenVINO backend uses (symmetric per-channel
int8 weights, 8-bit activations) and export as QuantizeLinear/DequantizeLinear pairs, which
ONNX Runtime runs as QDQ int8. CPU fake quantization is slow (about 3x a float step), so the
pass is bounded by ``Recipe.qat_images``. The result is saved as ``qat/model.safetensors`` plus
NNCF's placement config ``qat/nncf.json``; ``edgeft export`` turns it into the int8 models.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

# NNCF compiles its CPU extension on first use and gives up after 60 s by default; on a busy
# 2-core box the compile alone can take longer (seen in CI), so allow ten minutes.
os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "600")

import nncf
import torch
from torch import nn
from torch.utils.data import DataLoader

import edgeft.train.checkpoint as checkpoint
from edgeft.atomic import write_text_atomically
from edgeft.library_noise import quiet_nncf_torch
from edgeft.runtime.classification_metrics import classification_metrics
from edgeft.train.run_folder import QAT_CONFIG, QAT_MODEL

CALIBRATION_IMAGES = 128


def insert_fake_quantization(model: nn.Module, loader: DataLoader, images: int) -> nn.Module:
    """NNCF post-training quantization of the torch model: fake-quant ops with calibrated ranges."""
    batches = []
    for x, _ in loader:
        batches.append(x)
        if sum(len(b) for b in batches) >= images:
            break
    with quiet_nncf_torch():
        return nncf.quantize(model.eval(), nncf.Dataset(batches), subset_size=len(batches))


def restore_qat_model(model: nn.Module, run_dir: Path) -> nn.Module:
    """Rebuild the QAT model of a run: NNCF's hooks from its config, then its weights."""
    config = json.loads((run_dir / QAT_CONFIG).read_text())
    with quiet_nncf_torch():
        quantized = nncf.torch.load_from_config(model, config)
    checkpoint.load_weights(quantized, run_dir / QAT_MODEL)
    return quantized.eval()


def quantization_aware_training(
    trainer: Any,
    model: nn.Module,
    train_examples: list,
    make_loader: Any,
    val_loader: DataLoader,
    test_loader: DataLoader,
    loss_fn: nn.Module,
    classes: list[str],
) -> dict[str, Any]:
    """QAT phase of a run; returns its metrics (val before/after, test, seconds)."""
    recipe, run_dir = trainer.recipe, trainer.run_dir
    started = time.perf_counter()
    subset = train_examples[:]
    random.Random(recipe.seed).shuffle(subset)
    subset = subset[: recipe.qat_images]
    trainer.say(f"QAT: inserting fake quantization (NNCF, {CALIBRATION_IMAGES} calibration images)")
    quantized = insert_fake_quantization(
        model, make_loader(subset, shuffle=False, augment=False), CALIBRATION_IMAGES
    )
    truth, preds, _ = trainer.predict(quantized, val_loader, fp32=True)
    before = classification_metrics(truth, preds, classes)
    trainer.say(f"QAT: int8-simulated val accuracy before training {before['accuracy']:.4f}")
    optimizer = torch.optim.AdamW(quantized.parameters(), lr=recipe.qat_lr, weight_decay=0.0)
    loader = make_loader(subset, shuffle=True, augment=recipe.augment)
    quantized.train()
    for module in quantized.modules():  # frozen BN statistics: the usual QAT practice
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    with trainer.progress() as bar:
        task = bar.add_task("QAT", total=len(loader))
        for x, y in loader:
            loss = loss_fn(quantized(*trainer.inputs(x)), y.to(trainer.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            bar.update(task, advance=1, description=f"QAT loss {loss.item():.3f}")
    truth, preds, _ = trainer.predict(quantized, val_loader, fp32=True)
    after = classification_metrics(truth, preds, classes)
    truth, preds, _ = trainer.predict(quantized, test_loader, fp32=True)
    test = classification_metrics(truth, preds, classes)
    checkpoint.save_weights(quantized, run_dir / QAT_MODEL)
    write_text_atomically(run_dir / QAT_CONFIG, json.dumps(nncf.torch.get_config(quantized)))
    seconds = round(time.perf_counter() - started, 1)
    trainer.say(
        f"QAT: val accuracy {before['accuracy']:.4f} -> {after['accuracy']:.4f}; "
        f"test accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f} ({seconds} s)"
    )
    return {
        "images": len(subset),
        "lr": recipe.qat_lr,
        "val_before": {k: before[k] for k in ("accuracy", "macro_f1")},
        "val": {k: after[k] for k in ("accuracy", "macro_f1")},
        "test": test,
        "seconds": seconds,
    }

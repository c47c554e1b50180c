"""The run folder's checkpoints: safetensors for weights, written atomically, resumable.

``state.json`` is written last and names the last finished epoch, so a crash mid-write never
leaves a state that claims more than the files hold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from edgeft.atomic import replace_atomically, write_text_atomically
from edgeft.train.run_folder import LAST, OPTIMIZER, STATE


def save_weights(model: nn.Module, path: Path) -> None:
    replace_atomically(path, lambda t: save_model(model, str(t)))


def load_weights(model: nn.Module, path: Path) -> None:
    load_model(model, str(path), device=str(next(model.parameters()).device))


def save_progress(
    run_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: dict[str, Any],
) -> None:
    save_weights(model, run_dir / LAST)
    replace_atomically(
        run_dir / OPTIMIZER,
        lambda t: torch.save(
            {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, t
        ),
    )
    write_text_atomically(run_dir / STATE, json.dumps(state, indent=2))


def load_progress(
    run_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> dict[str, Any]:
    """Restore model, optimizer and schedule; ``weights_only`` keeps the load free of pickled code."""
    load_weights(model, run_dir / LAST)
    saved = torch.load(run_dir / OPTIMIZER, map_location="cpu", weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    return json.loads((run_dir / STATE).read_text())

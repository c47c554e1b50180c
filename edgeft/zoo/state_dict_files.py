"""Reading weight files safely: safetensors, or torch files with ``weights_only=True``.

Never unpickles arbitrary objects, so a user's weight file cannot run code.
"""

from __future__ import annotations

from pathlib import Path

import torch

from edgeft.errors import EdgeftError


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise EdgeftError(f"{path}: weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # both libraries raise many types for a bad file
        raise EdgeftError(
            f"{path}: not a readable weights file ({exc.__class__.__name__}: {exc})"
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EdgeftError(f"{path}: expected a state dict of tensors")
    return state

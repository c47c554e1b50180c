"""Where edgeft keeps what it materialises or records for a user (datasets, benchmark results)."""

from __future__ import annotations

import os
from pathlib import Path


def edgeft_home() -> Path:
    """``$EDGEFT_HOME``, else ``$XDG_DATA_HOME/edgeft``, else ``~/.local/share/edgeft``."""
    if explicit := os.environ.get("EDGEFT_HOME"):
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "edgeft"

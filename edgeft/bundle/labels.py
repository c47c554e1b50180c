"""Class labels that can be folder names, checked once for both sides.

A label becomes a folder in the image-folder layout and in ``monitor --export-uncertain``'s
output, so one rule (``name_problem``) refuses the labels that could not (at ``finetune`` and
``export``), and ``safe_folder_name`` maps any label a log carries to one that can.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable

from edgeft.errors import DatasetError, shown

# Well under the 255 bytes most filesystems allow one name, leaving room for a suffix.
MAX_NAME_BYTES = 200


class LabelError(DatasetError):
    """A class label that cannot be a folder name."""


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be one file or folder name inside another folder, or None when it
    can. Class labels must pass: the image-folder layout and ``monitor --export-uncertain`` keep
    each class as a folder, so ``../x`` would write outside it, and a leading dot would hide it
    (``class_folders`` skips hidden folders)."""
    if not isinstance(name, str):
        return f"{type(name).__name__}, not text"
    if not name:
        return "empty"
    if name.startswith("."):
        return "starts with '.' (hidden, or the folder itself or its parent)"
    bad = next((c for c in name if _unusable(c)), None)
    if bad is not None:
        return f"holds {bad!r} (a path separator, a control character or half a surrogate)"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"longer than {MAX_NAME_BYTES} bytes"
    return None


def check_class_names(classes: Iterable[object], source: object) -> None:
    """Refuse, at ``finetune`` and ``export``, labels that could not be class folders later."""
    for label in classes:
        problem = name_problem(label)
        if problem is not None:
            raise LabelError(
                f"{source}: class {shown(label)} cannot be a folder name: {problem}; rename it"
            )


def safe_folder_name(label: str) -> str:
    """``label`` itself when it can be a folder name; else its usable characters (at most 40)
    and a hash of the whole label, so two labels never share a folder by accident."""
    if name_problem(label) is None:
        return label
    kept = "".join("_" if _unusable(c) else c for c in label[:40]).lstrip(".")
    digest = hashlib.sha256(label.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{kept}-{digest}" if kept else f"label-{digest}"


def _unusable(character: str) -> bool:
    """A path separator, a control character (NUL, a line break) or half a surrogate pair."""
    return character in "/\\" or unicodedata.category(character) in ("Cc", "Cs")

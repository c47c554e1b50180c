"""ELPV as an inspection folder in the MVTec AD layout: the anomaly demo's data.

The cells keep ELPV's own fixed split (``edgeft.data.elpv``). Functional cells (defect
probability 0) of the train split are ``train/good``; validation and test hold their split's
good cells and, per defect probability, the defective ones (``p033``, ``p067``, ``p100``), so
eval reports each probability apart. ``metadata.csv`` carries the module type (mono, poly) and
the probability as slices. Made once under the edgeft home, staged, then reused.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from rich.progress import track

from edgeft.atomic import staged_folder
from edgeft.data.elpv import FRACTIONS, LICENCE, SEED, read_elpv_labels
from edgeft.data.splits import SPLITS, stratified_split
from edgeft.home import edgeft_home

BUILT_IN = "elpv"
_MARKER = "elpv-inspection.txt"


def defect_folder(probability: float) -> str:
    return "good" if probability == 0 else f"p{round(probability * 100):03d}"


def materialise_elpv_inspection(root: Path | None = None) -> Path:
    target = Path(root) if root else edgeft_home() / "datasets" / "elpv-inspection"
    if (target / _MARKER).is_file():
        return target
    cells = read_elpv_labels()
    parts = stratified_split([(c.probability, c.module_type) for c in cells], FRACTIONS, SEED)
    with staged_folder(target) as staging:
        rows = []
        jobs = [(split, cells[i]) for split, idx in zip(SPLITS, parts, strict=True) for i in idx]
        for split, cell in track(jobs, description="Writing the ELPV inspection folder"):
            if split == "train" and cell.probability > 0:
                continue  # an anomaly model learns from good parts only
            destination = staging / split / defect_folder(cell.probability) / cell.file.name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cell.file, destination)
            relative = destination.relative_to(staging).as_posix()
            rows.append([relative, cell.module_type, cell.probability])
        with open(staging / "metadata.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "module_type", "defect_probability"])
            writer.writerows(rows)
        (staging / _MARKER).write_text(f"ELPV (Deitsch et al.), licence {LICENCE}\n")
    return target


def inspection_source(data: str) -> str:
    """``data`` as a folder: ``elpv`` is the built-in demo data."""
    return str(materialise_elpv_inspection()) if data == BUILT_IN else data

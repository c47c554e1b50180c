"""The built-in demo data: ELPV electroluminescence images of solar cells (Deitsch et al.).

Materialised offline from the ``elpv-dataset`` package into an image folder with a fixed split:
stratified 75/25 train/test as in Deitsch et al. 2019, then 10% of train for validation. Strata
are (defect probability, module type), so the uncertain cells (1/3, 2/3) are spread evenly and can
be reported apart. Data licence: CC-BY-NC-SA-4.0.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from rich.progress import track

from edgeft.atomic import staged_folder
from edgeft.data.splits import SPLITS, stratified_split
from edgeft.errors import DatasetError
from edgeft.home import edgeft_home

SEED = 0
FRACTIONS = (0.75 * 0.9, 0.75 * 0.1, 0.25)
LICENCE = "CC-BY-NC-SA-4.0"
_MARKER = "elpv.json"


@dataclass(frozen=True)
class ElpvVariant:
    """How a defect probability becomes a class."""

    name: str
    classes: tuple[str, ...]

    def label(self, probability: float) -> str:
        if len(self.classes) == 2:
            return self.classes[int(probability >= 0.5)]
        return self.classes[round(probability * 3)]


VARIANTS = {
    "elpv": ElpvVariant("elpv", ("functional", "defective")),
    "elpv4": ElpvVariant("elpv4", ("p0", "p33", "p67", "p100")),
}


@dataclass(frozen=True)
class ElpvCell:
    file: Path
    probability: float
    module_type: str


def read_elpv_labels() -> list[ElpvCell]:
    """The package's labels.csv: image path, defect probability, module type (mono/poly)."""
    try:
        import elpv_dataset
    except ImportError as exc:
        raise DatasetError(
            "the ELPV demo data needs the package: pip install elpv-dataset==1.0.0.post1"
        ) from exc
    data_dir = Path(elpv_dataset.__file__).parent / "data"
    cells = []
    for line in (data_dir / "labels.csv").read_text().splitlines():
        if line.strip():
            path, probability, module_type = line.split()
            cells.append(ElpvCell(data_dir / path, float(probability), module_type))
    return cells


def elpv_recipe(folder: Path) -> dict[str, object]:
    """How a materialised ELPV folder was made (variant, seed, fractions, licence)."""
    return json.loads((folder / _MARKER).read_text())


def materialise_elpv(variant: str = "elpv", root: Path | None = None) -> Path:
    """Write ``root/{train,val,test}/<class>/cellNNNN.png`` and ``metadata.csv`` once; reuse after.

    Built in a staged folder, so an interrupted run leaves nothing behind.
    """
    if variant not in VARIANTS:
        raise DatasetError(f"unknown built-in dataset {variant!r}; choose {', '.join(VARIANTS)}")
    spec = VARIANTS[variant]
    target = Path(root) if root else edgeft_home() / "datasets" / variant
    recipe = {
        "method": "stratified on (defect probability, module type)",
        "variant": variant,
        "seed": SEED,
        "fractions": list(FRACTIONS),
        "licence": LICENCE,
    }
    if (target / _MARKER).is_file() and elpv_recipe(target) == recipe:
        return target
    if target.exists():
        raise DatasetError(f"{target} exists but is not an edgeft {variant} folder; move it away")
    cells = read_elpv_labels()
    strata = [(c.probability, c.module_type) for c in cells]
    parts = stratified_split(strata, FRACTIONS, SEED)
    with staged_folder(target) as staging:
        rows = []
        jobs = [(split, cells[i]) for split, idx in zip(SPLITS, parts, strict=True) for i in idx]
        for split, cell in track(jobs, description=f"Writing {variant} images"):
            label = spec.label(cell.probability)
            destination = staging / split / label / cell.file.name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cell.file, destination)
            rows.append(
                [
                    split,
                    destination.relative_to(staging).as_posix(),
                    label,
                    cell.probability,
                    cell.module_type,
                ]
            )
        with open(staging / "metadata.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["split", "file", "label", "defect_probability", "module_type"])
            writer.writerows(rows)
        (staging / _MARKER).write_text(json.dumps(recipe))
    return target

"""What every serving engine's layout shares: pick each model's production version and the model
file to ship, copy it into the engine's version folder, then let the engine's writer describe it."""

from __future__ import annotations

import shutil
from pathlib import Path

from edgeft.atomic import replace_folder, staging_folder
from edgeft.bundle import Bundle, model_files
from edgeft.errors import EdgeftError
from edgeft.repository.layouts import kserve, ovms, triton
from edgeft.repository.layouts.served_model import ServedModel, Writer
from edgeft.repository.store import ModelRepository
from edgeft.runtime.model_choice import choose_model


def write_layout(
    repository: ModelRepository,
    format: str,
    out: str | Path,
    engine: str = "onnxruntime",
    precision: str = "fp32",
    overwrite: bool = False,
) -> list[ServedModel]:
    """Write ``out`` for ``format`` (``triton`` or ``ovms``): every model at its production
    version, ``engine``'s model file of ``precision`` (int8: the one that fits this host)."""
    writers: dict[str, Writer] = {"triton": triton.write, "ovms": ovms.write}
    if format not in writers:
        raise EdgeftError(f"unknown layout format {format!r}; choose triton or ovms")
    out = Path(out)
    if out.exists() and not overwrite:
        raise EdgeftError(f"{out} already exists; choose another --out or pass --overwrite")
    models = []
    staging = staging_folder(out)
    try:
        for name in repository.models():
            version = repository.resolve(name)
            bundle = Bundle.load(version.path)
            entry = choose_model(bundle.manifest, engine, precision).entry
            folder = staging / name / str(version.version)
            folder.mkdir(parents=True)
            for file in model_files(bundle.path_of(entry)):
                shutil.copy2(file, folder / f"model{file.suffix}")
            models.append(ServedModel(name, version.version, entry, bundle.manifest))
        if not models:
            raise EdgeftError(f"{repository.root} has no models to lay out")
        writers[format](staging, models)
        kserve.write(staging, format)
        replace_folder(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return models

"""The offline model zoo by name, plus user-supplied models.

Names: ``mobilenet_v2``, ``efficientnet_lite0``, ``minilm``; ``torchvision:<arch>`` with a weights
file; or a local Hugging Face model folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeft.errors import EdgeftError
from edgeft.zoo.base import ZooModel


def _mobilenet_v2() -> ZooModel:
    from edgeft.zoo.packaged_weights import MOBILENET_V2_IMAGENET
    from edgeft.zoo.torchvision_model import TorchvisionModel

    # Groups follow the resolution stages of the paper's Table 2 (stem, then each stride change).
    stages = [[0, 1], [2, 3], [4, 5, 6], [7, 8, 9, 10], [11, 12, 13], [14, 15, 16], [17, 18]]
    return TorchvisionModel(
        "mobilenet_v2",
        "mobilenet_v2",
        MOBILENET_V2_IMAGENET,
        description="MobileNetV2 (ImageNet): the classic edge CNN, int8-friendly",
        stages=stages,
    )


def _efficientnet_lite0() -> ZooModel:
    from edgeft.zoo.efficientnet_lite0 import EfficientNetLite0

    return EfficientNetLite0()


def _minilm() -> ZooModel:
    from edgeft.zoo.huggingface_text import HuggingFaceTextModel
    from edgeft.zoo.packaged_weights import MINILM_L6

    return HuggingFaceTextModel(
        "minilm", MINILM_L6, description="all-MiniLM-L6-v2: 6-layer BERT encoder, 384 wide"
    )


ZOO: dict[str, Callable[[], ZooModel]] = {
    "mobilenet_v2": _mobilenet_v2,
    "efficientnet_lite0": _efficientnet_lite0,
    "minilm": _minilm,
}


def get_model(name: str, weights: str | Path | None = None) -> ZooModel:
    """Resolve a zoo name, ``torchvision:<arch>`` (needs ``weights``) or a local HF folder."""
    if name in ZOO:
        if weights is not None:
            raise EdgeftError(f"{name} is a zoo model with its own weights; drop --weights")
        return ZOO[name]()
    if name.startswith("torchvision:"):
        from edgeft.zoo.torchvision_model import TorchvisionModel

        if weights is None:
            raise EdgeftError(f"{name} needs a local weights file (--weights FILE)")
        arch = name.split(":", 1)[1]
        return TorchvisionModel(arch, arch, Path(weights))
    if Path(name).is_dir():
        if weights is not None:
            raise EdgeftError(
                f"{name} is a Hugging Face folder with its own weights; drop --weights"
            )
        return _huggingface_folder(Path(name))
    raise EdgeftError(
        f"unknown model {name!r}: choose one of {', '.join(ZOO)}, "
        "torchvision:<arch> with --weights FILE, or a local Hugging Face model folder"
    )


def _huggingface_folder(folder: Path, name: str | None = None) -> ZooModel:
    from edgeft.zoo.huggingface_folder import folder_task

    if folder_task(folder) == "image-classification":
        from edgeft.zoo.huggingface_image import HuggingFaceImageModel

        return HuggingFaceImageModel(name or folder.name, folder)
    from edgeft.zoo.huggingface_text import HuggingFaceTextModel

    return HuggingFaceTextModel(name or folder.name, folder)


def rebuild(record: dict[str, Any], run_dir: Path) -> ZooModel:
    """The zoo entry a run recorded (``ZooModel.record``), able to ``create(pretrained=False)``
    the run's architecture without the original weights: a Hugging Face model from the config
    the run folder keeps, a torchvision one from its architecture name."""
    source = record.get("source")
    if source == "zoo":
        return get_model(str(record["name"]))
    if source == "torchvision":
        from edgeft.zoo.torchvision_model import TorchvisionModel

        return TorchvisionModel(str(record["arch"]), str(record["arch"]), None)
    if source == "huggingface":
        return _huggingface_folder(run_dir, str(record["name"]))
    raise EdgeftError(f"{run_dir}: the run records an unknown model source {source!r}")


def summarise(name: str) -> dict[str, object]:
    """One row of ``edgeft models``: built for real, so params and size are measured."""
    from edgeft.bundle import ImagePreprocessing
    from edgeft.zoo.network import count_parameters

    entry = get_model(name)
    params = count_parameters(entry.create())
    spec = entry.preprocessing
    if isinstance(spec, ImagePreprocessing):
        shape = f"{spec.crop[0]}x{spec.crop[1]} {spec.colour}"
    else:
        shape = f"text, <= {spec.max_length} tokens"
    return {
        "name": entry.name,
        "task": entry.task,
        "params": params,
        "fp32_mb": round(params * 4 / 1e6, 1),
        "input": shape,
        "pretrained_labels": len(entry.labels()),
        "weights": entry.weights_source,
        "description": entry.description,
    }

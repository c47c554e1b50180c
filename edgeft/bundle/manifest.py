"""The bundle manifest (``edgeft.json``): what a model folder holds and how to feed it.

Pure Python on purpose: the runtime on the edge box reads it without torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from edgeft.errors import BundleError

SCHEMA_VERSION = 1
MANIFEST_NAME = "edgeft.json"

Task = Literal["image-classification", "text-classification"]
TASKS: tuple[str, ...] = ("image-classification", "text-classification")
ENGINES: tuple[str, ...] = ("onnxruntime", "openvino")
PRECISIONS: tuple[str, ...] = ("fp32", "int8")
# Where each engine's model sits inside a bundle, by (engine, precision).
MODEL_FILES: dict[tuple[str, str], str] = {
    ("onnxruntime", "fp32"): "model.onnx",
    ("openvino", "fp32"): "openvino/model.xml",
    ("onnxruntime", "int8"): "model.int8.onnx",
    ("openvino", "int8"): "openvino/model.int8.xml",
}


@dataclass(frozen=True)
class ImagePreprocessing:
    """How a decoded RGB image becomes the model's input tensor.

    Resize the shorter side to ``resize``, centre-crop ``crop`` (height, width), scale to [0, 1],
    normalise with ``mean``/``std``, lay out as ``layout``: torchvision's ImageClassification preset.
    """

    crop: tuple[int, int]
    resize: int
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    colour: Literal["RGB"] = "RGB"
    layout: Literal["NCHW"] = "NCHW"
    kind: Literal["image"] = "image"


@dataclass(frozen=True)
class TextPreprocessing:
    """How a string becomes token ids: the tokenizer file in the bundle, truncation length."""

    tokenizer: str
    max_length: int = 128
    lowercase: bool = True
    kind: Literal["text"] = "text"


Preprocessing = ImagePreprocessing | TextPreprocessing


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output; ``-1`` in a shape is a dynamic axis (batch, sequence)."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class ModelEntry:
    """One runnable model in the bundle: which engine reads which file at which precision."""

    path: str
    engine: str
    precision: str
    metrics: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Manifest:
    """Everything the runtime and the reports need to know about a bundle.

    ``files`` maps every file in the bundle (model weights, tokenizer, side files such as an IR's
    ``.bin``) to its sha256, so a load can prove nothing was changed or left half-written.
    """

    task: str
    labels: list[str]
    preprocessing: Preprocessing
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    models: list[ModelEntry] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Parse and validate; every problem is a ``BundleError`` naming the field."""
        if not isinstance(data, dict):
            raise BundleError("manifest is not a JSON object")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise BundleError(
                f"manifest schema_version {version!r} is not supported (this edgeft reads "
                f"{SCHEMA_VERSION}); re-export the bundle with this version of edgeft"
            )
        task = _require(data, "task", str)
        if task not in TASKS:
            raise BundleError(f"manifest task {task!r} is not one of {', '.join(TASKS)}")
        labels = _require(data, "labels", list)
        if not labels or not all(isinstance(label, str) for label in labels):
            raise BundleError("manifest labels must be a non-empty list of strings")
        models = [_model_entry(m) for m in _require(data, "models", list)]
        files = _require(data, "files", dict)
        for entry in models:
            if entry.path not in files:
                raise BundleError(f"model file {entry.path!r} is not listed in manifest files")
        return cls(
            task=task,
            labels=labels,
            preprocessing=preprocessing_from_dict(_require(data, "preprocessing", dict)),
            inputs=[_tensor(t) for t in _require(data, "inputs", list)],
            outputs=[_tensor(t) for t in _require(data, "outputs", list)],
            models=models,
            files={str(k): str(v) for k, v in files.items()},
            provenance=dict(data.get("provenance") or {}),
            metrics=dict(data.get("metrics") or {}),
        )

    def model(self, engine: str | None = None, precision: str | None = None) -> ModelEntry:
        """The first model matching engine and precision (either may be left open)."""
        for entry in self.models:
            if engine in (None, entry.engine) and precision in (None, entry.precision):
                return entry
        have = ", ".join(f"{m.engine}/{m.precision}" for m in self.models) or "none"
        wanted = "/".join(part for part in (engine, precision) if part) or "any"
        raise BundleError(f"bundle has no {wanted} model (has: {have})")


def _require(data: dict[str, Any], key: str, kind: type) -> Any:
    if key not in data:
        raise BundleError(f"manifest is missing {key!r}")
    value = data[key]
    if not isinstance(value, kind):
        raise BundleError(f"manifest {key!r} must be a {kind.__name__}, got {type(value).__name__}")
    return value


def preprocessing_from_dict(data: dict[str, Any]) -> Preprocessing:
    """Parse a preprocessing spec (from a manifest or a run folder); errors name the field."""
    kind = data.get("kind")
    try:
        if kind == "image":
            return ImagePreprocessing(
                crop=tuple(data["crop"]),
                resize=int(data["resize"]),
                interpolation=data.get("interpolation", "bilinear"),
                mean=tuple(data["mean"]),
                std=tuple(data["std"]),
                colour=data.get("colour", "RGB"),
                layout=data.get("layout", "NCHW"),
            )
        if kind == "text":
            return TextPreprocessing(
                tokenizer=str(data["tokenizer"]),
                max_length=int(data["max_length"]),
                lowercase=bool(data.get("lowercase", True)),
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"manifest preprocessing ({kind}) is malformed: {exc!r}") from exc
    raise BundleError(f"manifest preprocessing kind {kind!r} is not 'image' or 'text'")


def _tensor(data: Any) -> TensorSpec:
    try:
        return TensorSpec(
            name=str(data["name"]), shape=tuple(data["shape"]), dtype=str(data["dtype"])
        )
    except (KeyError, TypeError) as exc:
        raise BundleError(f"manifest tensor spec {data!r} is malformed") from exc


def _model_entry(data: Any) -> ModelEntry:
    if not isinstance(data, dict):
        raise BundleError(f"manifest model entry {data!r} is not an object")
    entry = ModelEntry(
        path=str(_require(data, "path", str)),
        engine=str(_require(data, "engine", str)),
        precision=str(_require(data, "precision", str)),
        metrics=dict(data.get("metrics") or {}),
        details=dict(data.get("details") or {}),
    )
    if entry.engine not in ENGINES:
        raise BundleError(f"model {entry.path!r}: engine {entry.engine!r} not in {ENGINES}")
    if entry.precision not in PRECISIONS:
        raise BundleError(
            f"model {entry.path!r}: precision {entry.precision!r} not in {PRECISIONS}"
        )
    return entry

"""The bundle manifest (``edgeft.json``): what a model folder holds and how to feed it.

Pure Python on purpose: the runtime on the edge box reads it without torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from edgeft.backend_registry import ENGINES
from edgeft.errors import BundleError, EdgeftError
from edgeft.targets.int8_scheme import QuantizationScheme

# 2: per int8 model its scheme, targets, validating host and build-time acceptance outputs;
# int8 candidates (a QAT export) apart from budget-checked models; the acceptance set.
# 3: the reference profile for monitoring, and the graph's embedding sketch output.
SCHEMA_VERSION = 3
READABLE_SCHEMAS = (1, 2, 3)
MANIFEST_NAME = "edgeft.json"

Task = Literal["image-classification", "text-classification"]
TASKS: tuple[str, ...] = ("image-classification", "text-classification")
PRECISIONS: tuple[str, ...] = ("fp32", "int8")
# Where each engine's fp32 model sits inside a bundle; int8 models are named by their scheme
# (``int8_file``) and QAT exports, candidates until the budget accepts them, by ``qat_file``.
# The graph output holding the monitoring sketch (the pooled features, projected at export).
EMBEDDING_OUTPUT = "embedding"
MODEL_FILES: dict[str, str] = {"onnxruntime": "model.onnx", "openvino": "openvino/model.xml"}


def int8_file(engine: str, scheme_key: str) -> str:
    """``model.int8-u8s8.onnx``, ``openvino/model.int8-u8s7.xml``: one file per int8 scheme."""
    stem, _, suffix = MODEL_FILES[engine].rpartition(".")
    return f"{stem}.int8-{scheme_key}.{suffix}"


def qat_file(engine: str) -> str:
    stem, _, suffix = MODEL_FILES[engine].rpartition(".")
    return f"{stem}.qat.{suffix}"


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
    """How a string becomes token ids: the tokenizer file in the bundle, truncation length, and
    whether text is lowercased first (an uncased model's ``do_lower_case``; where the tokenizer's
    own normalizer lowercases too, doing it twice changes nothing)."""

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
    """One runnable model in the bundle: which engine reads which file at which precision.

    int8 models also say which scheme they follow (``QuantizationScheme.to_dict``), which target
    profiles they are for, and the host fingerprint they were held to the budget on. A
    ``candidate`` (a QAT export) was never held to the budget: ``quantize`` may try it, the
    runtime never runs it. ``reference_outputs`` names the logits this model gave on the bundle's
    acceptance set when it was built, so a box can compare its own.
    """

    path: str
    engine: str
    precision: str
    metrics: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    scheme: dict[str, Any] | None = None
    targets: list[str] = field(default_factory=list)
    validated_on: dict[str, Any] | None = None
    candidate: bool = False
    reference_outputs: str | None = None

    @property
    def int8_scheme(self) -> QuantizationScheme | None:
        return QuantizationScheme.from_dict(self.scheme) if self.scheme else None

    @property
    def label(self) -> str:
        """``onnxruntime/int8 u8s7``: how tables and messages name this model."""
        scheme = self.int8_scheme
        return f"{self.engine}/{self.precision}" + (f" {scheme.key}" if scheme else "")


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
    acceptance: str | None = None  # the acceptance set's index file (``acceptance/set.json``)
    reference: str | None = None  # the monitoring reference profile (``reference/profile.json``)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Parse and validate; every problem is a ``BundleError`` naming the field."""
        if not isinstance(data, dict):
            raise BundleError("manifest is not a JSON object")
        version = data.get("schema_version")
        if version not in READABLE_SCHEMAS:
            raise BundleError(
                f"manifest schema_version {version!r} is not supported (this edgeft reads "
                f"{', '.join(map(str, READABLE_SCHEMAS))}); re-export the bundle with this "
                "version of edgeft"
            )
        task = _require(data, "task", str)
        if task not in TASKS:
            raise BundleError(f"manifest task {task!r} is not one of {', '.join(TASKS)}")
        labels = _require(data, "labels", list)
        if not labels or not all(isinstance(label, str) for label in labels):
            raise BundleError("manifest labels must be a non-empty list of strings")
        models = [_model_entry(m, version) for m in _require(data, "models", list)]
        files = _require(data, "files", dict)
        for rel in files:
            confined_path(str(rel), "files")
        acceptance, reference = data.get("acceptance"), data.get("reference")
        named = [(m.path, "model") for m in models]
        named += [
            (m.path[: -len(".xml")] + ".bin", "IR weights")
            for m in models
            if m.path.endswith(".xml")
        ]
        named += [(m.reference_outputs, "reference outputs") for m in models if m.reference_outputs]
        named += [(acceptance, "acceptance set")] if acceptance is not None else []
        named += [(reference, "reference profile")] if reference is not None else []
        preprocessing = preprocessing_from_dict(_require(data, "preprocessing", dict))
        if isinstance(preprocessing, TextPreprocessing):
            named.append((preprocessing.tokenizer, "tokenizer"))
        for rel, what in named:
            if confined_path(rel, what) not in files:
                raise BundleError(f"{what} file {rel!r} is not listed in manifest files")
        return cls(
            task=task,
            labels=labels,
            preprocessing=preprocessing,
            inputs=[_tensor(t) for t in _require(data, "inputs", list)],
            outputs=[_tensor(t) for t in _require(data, "outputs", list)],
            models=models,
            files={str(k): str(v) for k, v in files.items()},
            provenance=dict(data.get("provenance") or {}),
            metrics=dict(data.get("metrics") or {}),
            acceptance=acceptance,
            reference=reference,
        )

    def output(self, name: str) -> int | None:
        """The position of the graph output ``name`` (``embedding``), None if it has none."""
        return next((i for i, t in enumerate(self.outputs) if t.name == name), None)

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


def confined_path(rel: Any, what: str) -> str:
    """``rel`` as a relative POSIX path inside the bundle; ``..``, absolute paths and
    backslashes are refused (symlinks out are caught when the files are hashed)."""
    if not isinstance(rel, str) or not rel:
        raise BundleError(f"manifest {what} path {rel!r} is not a non-empty string")
    parts = rel.split("/")
    if rel.startswith("/") or "\\" in rel or ":" in parts[0] or ".." in parts or "" in parts:
        raise BundleError(f"manifest {what} path {rel!r} is not a plain path inside the bundle")
    return rel


def _model_entry(data: Any, version: int) -> ModelEntry:
    if not isinstance(data, dict):
        raise BundleError(f"manifest model entry {data!r} is not an object")
    details = dict(data.get("details") or {})
    precision = str(_require(data, "precision", str))
    if version == 1:  # schema 1 kept the scheme in details; unchecked QAT exports had no drop
        data = data | {
            "scheme": details.get("scheme"),
            "candidate": details.get("source") == "qat" and "val_drop_points" not in details,
        }
    scheme = data.get("scheme")
    try:
        if scheme is not None:
            QuantizationScheme.from_dict(scheme)
    except (EdgeftError, TypeError, AttributeError) as exc:
        raise BundleError(f"model {data.get('path')!r}: int8 scheme {scheme!r}: {exc}") from exc
    validated_on, candidate = data.get("validated_on"), data.get("candidate", False)
    if validated_on is not None and not isinstance(validated_on, dict):
        raise BundleError(f"model {data.get('path')!r}: validated_on must be an object")
    if not isinstance(candidate, bool):
        raise BundleError(f"model {data.get('path')!r}: candidate must be true or false")
    targets = data.get("targets") or []
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise BundleError(f"model {data.get('path')!r}: targets must be a list of names")
    entry = ModelEntry(
        path=confined_path(_require(data, "path", str), "model"),
        engine=str(_require(data, "engine", str)),
        precision=precision,
        metrics=dict(data.get("metrics") or {}),
        details=details,
        scheme=dict(scheme) if scheme else None,
        targets=list(targets),
        validated_on=dict(validated_on) if validated_on else None,
        candidate=candidate,
        reference_outputs=data.get("reference_outputs"),
    )
    if entry.engine not in ENGINES:
        raise BundleError(f"model {entry.path!r}: engine {entry.engine!r} not in {ENGINES}")
    if entry.precision not in PRECISIONS:
        raise BundleError(
            f"model {entry.path!r}: precision {entry.precision!r} not in {PRECISIONS}"
        )
    return entry

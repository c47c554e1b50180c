"""The bundle manifest (``edgeft.json``): what a model folder holds and how to feed it.

Pure Python on purpose: the runtime on the edge box reads it without torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from typing import Any, Literal, Protocol, TypeVar

from edgeft.bundle.anomaly_spec import AnomalySpec
from edgeft.engine_registry import ENGINES
from edgeft.errors import BundleError, EdgeftError
from edgeft.targets.int8_scheme import QuantizationScheme

# 2: per int8 model its scheme, targets, validating host and build-time acceptance outputs;
# int8 candidates (a QAT export) apart from budget-checked models; the acceptance set.
# 3: the reference profile for monitoring, and the graph's embedding sketch output.
# 4: the anomaly-detection task and its ``anomaly`` section (bank files, scoring, threshold).
SCHEMA_VERSION = 4
READABLE_SCHEMAS = (1, 2, 3, 4)
MANIFEST_NAME = "edgeft.json"

Task = Literal["image-classification", "text-classification", "anomaly-detection"]
ANOMALY_TASK = "anomaly-detection"
TASKS: tuple[str, ...] = ("image-classification", "text-classification", ANOMALY_TASK)
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


# Why an engine and scheme got no int8 model (``Int8Failure.why``; bundles before it lack it).
OVER_BUDGET = "over the accuracy budget"
SLOWER = "slower than fp32 on this host"

T = TypeVar("T")


class _Record(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def _object(what: str, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BundleError(f"manifest {what} {data!r} is not an object")
    return data


def _number(value: Any) -> float:
    """A stored number as it was written (an int stays an int, so it is written back as one)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{value!r} is not a number")
    return value


def _optional(value: Any, parse: Callable[[Any], T]) -> T | None:
    return None if value is None else parse(value)


def _to_dict(record: _Record | None) -> dict[str, Any] | None:
    return None if record is None else record.to_dict()


@dataclass(frozen=True)
class DropInterval:
    """A paired drop against fp32 in points, with its 95% bootstrap interval."""

    drop: float
    low: float
    high: float

    def to_dict(self) -> dict[str, Any]:
        return {"drop": self.drop, "low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, data: Any) -> DropInterval:
        data = _object("drop interval", data)
        return cls(_number(data["drop"]), _number(data["low"]), _number(data["high"]))


@dataclass(frozen=True)
class Int8Speed:
    """An int8 model's speed against its fp32 on the host that made it, at ``batch``:
    ``speedup`` is fp32's p50 over int8's (below 1: int8 is slower)."""

    fp32_p50_ms: float
    int8_p50_ms: float
    speedup: float
    batch: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Int8Speed:
        data = _object("int8 speed", data)
        return cls(
            _number(data["fp32_p50_ms"]),
            _number(data["int8_p50_ms"]),
            _number(data["speedup"]),
            int(data.get("batch", 1)),
        )


@dataclass(frozen=True)
class ClassDelta:
    """One class's int8 recall and F1 minus fp32's, in points (negative: int8 loses there)."""

    recall: float
    f1: float

    def to_dict(self) -> dict[str, Any]:
        return {"recall": self.recall, "f1": self.f1}

    @classmethod
    def from_dict(cls, data: Any) -> ClassDelta:
        data = _object("per-class delta", data)
        return cls(_number(data["recall"]), _number(data["f1"]))


@dataclass(frozen=True)
class Confirmation:
    """The accepted int8 model on the confirmation slice (validation items the search never
    saw): its drop in points and the paired interval."""

    items: int
    drop_points: float
    drop_interval: DropInterval

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "drop_points": self.drop_points,
            "drop_interval": self.drop_interval.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Confirmation:
        data = _object("confirmation", data)
        return cls(
            int(data["items"]),
            _number(data["drop_points"]),
            DropInterval.from_dict(data["drop_interval"]),
        )


@dataclass(frozen=True)
class Fp32Agreement:
    """Top-1 agreement of an int8 model with its fp32 on ``items`` unlabelled items, and the mean
    L1 distance of their class probabilities (``deviation``)."""

    items: int
    agreement: float
    deviation: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Fp32Agreement:
        data = _object("agreement", data)
        return cls(int(data["items"]), _number(data["agreement"]), _number(data["deviation"]))


@dataclass(frozen=True)
class Int8Details:
    """What ``quantize`` recorded about an int8 model (an int8 entry's ``details``; read it as
    ``ModelEntry.int8``).

    ``from_dict`` reads the details of every readable schema: a key a bundle lacks takes its
    default (a QAT candidate, never held to the budget, has no ``val_drop_points``; bundles
    before ``setting`` named it ``variant``; without ``budget_metric`` the budget was accuracy),
    and keys this edgeft does not know stay in ``extra``. ``to_dict`` writes the record as
    ``quantize`` stores it, keys in its order: ``confirmation`` and ``speed`` always (null: no
    confirmation slice; not timed on this host), the optional fields where set.
    """

    setting: str | None = None  # the calibration method or engine preset accepted
    method: str | None = None  # the --method asked for
    max_accuracy_drop: float | None = None  # the budget, in points of ``budget_metric``
    val_drop_points: float | None = None  # None: never held to the budget
    budget_metric: str = "accuracy"  # accuracy, macro-f1, recall:CLASS or agreement
    per_class_delta_points: dict[str, ClassDelta] = field(default_factory=dict)
    kept_float: list[str] | None = None  # the layers kept in floating point
    attempts: list[dict[str, Any]] = field(default_factory=list)  # every candidate tried
    val_drop_interval: DropInterval | None = None  # with labels: the paired 95% interval
    budget_resolution: str | None = None  # why the search's split cannot settle the budget
    confirmation: Confirmation | None = None  # None: no confirmation slice
    model_type: str | None = None  # cnn or transformer
    speed: Int8Speed | None = None  # None: not timed (this host does not run its kernels)
    unlabelled: Fp32Agreement | None = None  # on training items the calibration did not use
    graph_rewrites: dict[str, int] | None = None  # a rewrite -> how many places
    exact_arithmetic: bool | None = None  # held to the budget in exact int8 arithmetic
    calibration: dict[str, Any] | None = None  # the calibration set: recipe, size, fingerprint
    extra: dict[str, Any] = field(default_factory=dict)  # keys this edgeft does not know

    @property
    def float_layers(self) -> int | None:
        """How many layers were kept in float; None where the record does not say."""
        return None if self.kept_float is None else len(self.kept_float)

    @property
    def speedup(self) -> float | None:
        """fp32's p50 over int8's on the host that made it; None where not timed."""
        return None if self.speed is None else self.speed.speedup

    def to_dict(self) -> dict[str, Any]:
        deltas = {name: delta.to_dict() for name, delta in self.per_class_delta_points.items()}
        ordered: tuple[tuple[str, Any], ...] = (
            ("setting", self.setting),
            ("method", self.method),
            ("max_accuracy_drop", self.max_accuracy_drop),
            ("val_drop_points", self.val_drop_points),
            ("budget_metric", self.budget_metric),
            ("per_class_delta_points", deltas),
            ("kept_float", None if self.kept_float is None else list(self.kept_float)),
            ("attempts", list(self.attempts)),
            ("val_drop_interval", _to_dict(self.val_drop_interval)),
            ("budget_resolution", self.budget_resolution),
            ("confirmation", _to_dict(self.confirmation)),
            ("model_type", self.model_type),
            ("speed", _to_dict(self.speed)),
            ("unlabelled", _to_dict(self.unlabelled)),
            ("graph_rewrites", None if self.graph_rewrites is None else dict(self.graph_rewrites)),
            ("exact_arithmetic", self.exact_arithmetic),
            ("calibration", self.calibration),
        )
        stored = {k: v for k, v in ordered if v is not None or k in _ALWAYS_STORED}
        return stored | self.extra

    @classmethod
    def from_dict(cls, data: Any) -> Int8Details:
        """Parse; a malformed field is a ``BundleError``."""
        data = _object("int8 details", data)
        known = {f.name for f in fields(cls)} - {"extra"} | {"variant"}
        try:
            deltas = _object("per-class deltas", data.get("per_class_delta_points") or {})
            rewrites = _optional(data.get("graph_rewrites"), partial(_object, "graph rewrites"))
            return cls(
                setting=_optional(data.get("setting", data.get("variant")), str),
                method=_optional(data.get("method"), str),
                max_accuracy_drop=_optional(data.get("max_accuracy_drop"), _number),
                val_drop_points=_optional(data.get("val_drop_points"), _number),
                budget_metric=str(data.get("budget_metric") or "accuracy"),
                per_class_delta_points={
                    str(name): ClassDelta.from_dict(delta) for name, delta in deltas.items()
                },
                kept_float=_optional(data.get("kept_float"), _names),
                attempts=[dict(_object("attempt", a)) for a in data.get("attempts") or []],
                val_drop_interval=_optional(data.get("val_drop_interval"), DropInterval.from_dict),
                budget_resolution=_optional(data.get("budget_resolution"), str),
                confirmation=_optional(data.get("confirmation"), Confirmation.from_dict),
                model_type=_optional(data.get("model_type"), str),
                speed=_optional(data.get("speed"), Int8Speed.from_dict),
                unlabelled=_optional(data.get("unlabelled"), Fp32Agreement.from_dict),
                graph_rewrites=None
                if rewrites is None
                else {str(k): int(v) for k, v in rewrites.items()},
                exact_arithmetic=_optional(data.get("exact_arithmetic"), bool),
                calibration=_optional(data.get("calibration"), partial(_object, "calibration")),
                extra={k: v for k, v in data.items() if k not in known},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"manifest int8 details are malformed ({exc!r})") from exc


# Int8Details keys stored even when empty or null (null confirmation: no confirmation slice).
_ALWAYS_STORED = ("budget_metric", "per_class_delta_points", "attempts", "confirmation", "speed")


def _names(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise TypeError(f"{value!r} is not a list")
    return [str(name) for name in value]


@dataclass(frozen=True)
class BestCandidate:
    """The candidate that came closest for an engine and scheme that got no int8 model: its
    setting, how many layers it kept in float, its drop in points and its headline ``scores``
    (stored beside them: ``accuracy``, ``macro_f1``, ``agreement``)."""

    setting: str
    float_layers: int
    drop: float
    scores: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        best = {"setting": self.setting, "float_layers": self.float_layers, "drop": self.drop}
        return best | self.scores

    @classmethod
    def from_dict(cls, data: Any) -> BestCandidate:
        rest = dict(_object("best candidate", data))
        setting = rest.pop("setting") if "setting" in rest else rest.pop("variant")  # before 3
        return cls(str(setting), int(rest.pop("float_layers")), _number(rest.pop("drop")), rest)


@dataclass(frozen=True)
class Int8Failure:
    """An engine and scheme that got no int8 model (``Manifest.int8_failures``): ``why``
    (``OVER_BUDGET`` or ``SLOWER``; bundles before it lack it: they were over budget), its
    ``best`` candidate and the ``edgeft quantize`` ``command`` that would accept that one."""

    engine: str
    scheme: str  # the scheme's key (``u8s8``, ``u8s7``)
    command: str
    targets: list[str] = field(default_factory=list)
    best: BestCandidate | None = None  # None: every setting failed
    why: str = OVER_BUDGET
    reason: str = ""  # the budget's message, naming every attempt
    attempts: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # keys this edgeft does not know

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "scheme": self.scheme,
            "targets": list(self.targets),
            "best": _to_dict(self.best),
            "command": self.command,
            "why": self.why,
            "reason": self.reason,
            "attempts": list(self.attempts),
        } | self.extra

    @classmethod
    def from_dict(cls, data: Any) -> Int8Failure:
        """Parse; a malformed failure is a ``BundleError``."""
        data = _object("int8 failure", data)
        known = {f.name for f in fields(cls)} - {"extra"}
        try:
            return cls(
                engine=str(data["engine"]),
                scheme=str(data["scheme"]),
                command=str(data["command"]),
                targets=_names(data.get("targets") or []),
                best=_optional(data.get("best"), BestCandidate.from_dict),
                why=str(data.get("why", OVER_BUDGET)),
                reason=str(data.get("reason", "")),
                attempts=[dict(_object("attempt", a)) for a in data.get("attempts") or []],
                extra={k: v for k, v in data.items() if k not in known},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"manifest int8 failure is malformed ({exc!r})") from exc


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
    def int8(self) -> Int8Details | None:
        """``details`` read as what ``quantize`` recorded, for an int8 model; None for fp32.
        (``details`` stays the stored dict: it is what the manifest holds, byte for byte.)"""
        return Int8Details.from_dict(self.details) if self.precision == "int8" else None

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
    anomaly: AnomalySpec | None = None  # an anomaly-detection bundle's bank, scoring, threshold
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
        anomaly = None
        if task == ANOMALY_TASK:
            anomaly = AnomalySpec.from_dict(_require(data, "anomaly", dict))
            named += list(anomaly.files.items())
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
            anomaly=anomaly,
        )

    @property
    def int8_failures(self) -> list[Int8Failure]:
        """The engines and schemes ``quantize`` made no int8 model for (``provenance``'s
        ``int8_failures``), with why and the command that would accept the best candidate."""
        failures = self.provenance.get("int8_failures") or []
        if not isinstance(failures, list):
            raise BundleError("manifest provenance int8_failures must be a list")
        return [Int8Failure.from_dict(failure) for failure in failures]

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

"""What an anomaly bundle adds to the manifest: its memory bank files, how raw distances become
one score, and the threshold on it.

A raw score is a distance, on a scale that differs per backbone and per line. Each part (the
worst patch, the image embedding, and with ``finetune --gaussians`` the worst Mahalanobis
distance to the per-position Gaussians) is first put in units of its spread over good
validation parts, ``z = (distance - centre) / spread``; ``scoring`` says which parts count and
are averaged (``PARTS``). That raw score then goes through a logistic placed so the threshold chosen at fit reads
0.5 (``normaliser``): every model's score is in (0, 1), higher is more anomalous, and a
threshold of 0.5 means the same thing (the chosen operating point) for every model. Moving the
threshold (``edgeft threshold``) changes only ``threshold``; the normaliser stays, so scores
already logged keep their meaning.

A line that makes several variants of a part (``finetune --group-by``) has ``groups``: each
variant's own patch and embedding scales. A part is put in the units of the variant of its
nearest good training image (``embedding_groups`` names each one's variant), so a variant
whose good parts simply sit farther from the bank is not flagged for that.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from edgeft.errors import BundleError

# Each scoring: the distances it averages (in good-part spreads).
PARTS = {
    "patch": ("patch",),
    "embedding": ("embedding",),
    "mixed": ("patch", "embedding"),
    "gaussian": ("gaussian",),
    "all": ("patch", "embedding", "gaussian"),
}
SCORINGS = tuple(PARTS)
# Bundle files of an anomaly model beside its feature network.
BANK_FILE = "anomaly/bank.npy"
EMBEDDINGS_FILE = "anomaly/embeddings.npy"
GROUPS_FILE = "anomaly/embedding_groups.npy"
GAUSSIAN_MEAN_FILE = "anomaly/gaussian_mean.npy"
GAUSSIAN_PRECISION_FILE = "anomaly/gaussian_precision.npy"
DISTANCE_FILE = "anomaly/distance.onnx"
BANK_PRECISIONS = ("fp16", "fp32")  # how the banks are stored, smallest first
VERDICTS = ["good", "defect"]  # the bundle's labels: what a score above the threshold means
# An int8 model's own scales (``ModelEntry.details``): its features sit elsewhere than fp32's.
MODEL_SCALES = "anomaly_scales"
_SCALES = ("patch_scale", "embedding_scale", "gaussian_scale", "normaliser", "map_spread", "groups")


@dataclass(frozen=True)
class ScoreScale:
    """Centre and spread of a distance on good validation parts."""

    centre: float
    spread: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.centre) and math.isfinite(self.spread) and self.spread > 0):
            raise BundleError(f"score scale {self.centre}, {self.spread}: needs a spread > 0")

    @classmethod
    def from_dict(cls, data: Any, what: str) -> ScoreScale:
        try:
            return cls(float(data["centre"]), float(data["spread"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"manifest anomaly {what} is malformed ({exc!r})") from None


@dataclass(frozen=True)
class GroupScales:
    """One variant's scales: those of its good validation parts."""

    name: str
    patch_scale: ScoreScale
    embedding_scale: ScoreScale
    gaussian_scale: ScoreScale | None = None

    @classmethod
    def from_dict(cls, data: Any) -> GroupScales:
        try:
            return cls(
                str(data["name"]),
                ScoreScale.from_dict(data["patch_scale"], "group patch_scale"),
                ScoreScale.from_dict(data["embedding_scale"], "group embedding_scale"),
                _optional_scale(data.get("gaussian_scale"), "group gaussian_scale"),
            )
        except (KeyError, TypeError) as exc:
            raise BundleError(f"manifest anomaly group is malformed ({exc!r})") from None


@dataclass(frozen=True)
class AnomalySpec:
    """The anomaly part of ``edgeft.json`` (``Manifest.anomaly``)."""

    scoring: str
    patch_scale: ScoreScale
    embedding_scale: ScoreScale
    normaliser: ScoreScale
    threshold: float = 0.5
    threshold_rule: dict[str, Any] = field(default_factory=dict)
    map_spread: float = 1.0  # spread of single patch distances on good parts: the map's scale
    map_sigma: float = 4.0  # Gaussian smoothing of the defect map, in model-input pixels
    search_rows: int = 1024  # bank rows per engine call: bounds the search's memory
    bank_precision: str = "fp32"  # the bank files' dtype (the search computes in fp32)
    groups: tuple[GroupScales, ...] = ()  # per variant, in the order ``embedding_groups`` counts
    gaussian_scale: ScoreScale | None = None
    gaussian_channels: tuple[int, ...] = ()  # the patch channels the Gaussians are over
    gaussian_pool: int = 1  # their grid: the patch grid averaged over pool x pool
    bank: str = BANK_FILE
    embeddings: str = EMBEDDINGS_FILE
    distance: str = DISTANCE_FILE
    embedding_groups: str = GROUPS_FILE
    gaussian_mean: str = GAUSSIAN_MEAN_FILE
    gaussian_precision: str = GAUSSIAN_PRECISION_FILE

    def __post_init__(self) -> None:
        if self.scoring not in SCORINGS:
            raise BundleError(
                f"manifest anomaly scoring {self.scoring!r} is not one of {', '.join(SCORINGS)}"
            )
        check_threshold(self.threshold)
        if self.bank_precision not in BANK_PRECISIONS:
            raise BundleError(
                f"manifest anomaly bank_precision {self.bank_precision!r} is not one of "
                f"{', '.join(BANK_PRECISIONS)}"
            )
        gaussian = self.gaussian_channels and self.gaussian_scale is not None
        if "gaussian" in PARTS[self.scoring] and not gaussian:
            raise BundleError(
                f"manifest anomaly scoring {self.scoring!r} needs gaussian_channels and "
                "gaussian_scale"
            )
        if len({g.name for g in self.groups}) != len(self.groups):
            raise BundleError("manifest anomaly groups repeat a name")
        if self.gaussian_pool < 1:
            raise BundleError("manifest anomaly gaussian_pool must be >= 1")
        if self.search_rows < 1 or self.map_sigma < 0 or not self.map_spread > 0:
            raise BundleError(
                "manifest anomaly search_rows must be >= 1, map_sigma >= 0 and map_spread > 0"
            )

    @property
    def files(self) -> dict[str, str]:
        named = {
            self.bank: "memory bank",
            self.embeddings: "embedding bank",
            self.distance: "distance graph",
        }
        if self.groups:
            named[self.embedding_groups] = "variant of each image"
        if self.gaussian_channels:
            named[self.gaussian_mean] = "gaussian means"
            named[self.gaussian_precision] = "gaussian precisions"
        return named

    def scales(self) -> dict[str, Any]:
        """The distance scales and normaliser: what an int8 model re-fits on validation, so
        that 0.5 stays the same operating point for it (``for_model`` reads them back)."""
        return {k: v for k, v in asdict(self).items() if k in _SCALES}

    def for_model(self, details: dict[str, Any]) -> AnomalySpec:
        """The spec for one model: its own scales where ``quantize`` recorded them."""
        own = details.get(MODEL_SCALES)
        if own is None:
            return self
        merged = AnomalySpec.from_dict(self.to_dict() | own)
        return replace(self, **{k: getattr(merged, k) for k in _SCALES})

    def with_threshold(self, threshold: float, rule: dict[str, Any]) -> AnomalySpec:
        return replace(self, threshold=check_threshold(threshold), threshold_rule=rule)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> AnomalySpec:
        if not isinstance(data, dict):
            raise BundleError("manifest anomaly is not an object")
        try:
            return cls(
                scoring=str(data["scoring"]),
                patch_scale=ScoreScale.from_dict(data["patch_scale"], "patch_scale"),
                embedding_scale=ScoreScale.from_dict(data["embedding_scale"], "embedding_scale"),
                normaliser=ScoreScale.from_dict(data["normaliser"], "normaliser"),
                threshold=float(data["threshold"]),
                threshold_rule=dict(data.get("threshold_rule") or {}),
                map_spread=float(data["map_spread"]),
                map_sigma=float(data.get("map_sigma", 4.0)),
                search_rows=int(data.get("search_rows", 1024)),
                bank_precision=str(data.get("bank_precision", "fp32")),
                groups=tuple(GroupScales.from_dict(g) for g in data.get("groups") or ()),
                gaussian_scale=_optional_scale(data.get("gaussian_scale"), "gaussian_scale"),
                gaussian_channels=tuple(int(c) for c in data.get("gaussian_channels") or ()),
                gaussian_pool=int(data.get("gaussian_pool", 1)),
                bank=str(data.get("bank", BANK_FILE)),
                embeddings=str(data.get("embeddings", EMBEDDINGS_FILE)),
                distance=str(data.get("distance", DISTANCE_FILE)),
                embedding_groups=str(data.get("embedding_groups", GROUPS_FILE)),
                gaussian_mean=str(data.get("gaussian_mean", GAUSSIAN_MEAN_FILE)),
                gaussian_precision=str(data.get("gaussian_precision", GAUSSIAN_PRECISION_FILE)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"manifest anomaly is malformed ({exc!r})") from None


def _optional_scale(data: Any, what: str) -> ScoreScale | None:
    return None if data is None else ScoreScale.from_dict(data, what)


def check_threshold(threshold: float) -> float:
    """A threshold on the normalised score: strictly between 0 and 1 (the score's range)."""
    if not (isinstance(threshold, int | float) and 0.0 < threshold < 1.0):
        raise BundleError(
            f"threshold {threshold!r} is outside the score range: give a value between 0 and 1 "
            "(0.5 is the operating point chosen at fit)"
        )
    return float(threshold)

"""``AnomalyDetector``: an anomaly bundle on the edge box, from images to a score, a verdict
and a defect map. The feature network runs on the chosen engine (int8 where it fits the host,
as for classification); the nearest-neighbour step runs on the same engine, in chunks
(``NearestSearch``); the rest is a few numpy lines."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from functools import partial
from pathlib import Path

import numpy as np

from edgeft.atomic import replace_atomically
from edgeft.bundle import Bundle, ImagePreprocessing, ModelEntry, TensorSpec
from edgeft.bundle.anomaly_spec import AnomalySpec
from edgeft.errors import BundleError, EdgeftError
from edgeft.runtime.anomaly.gaussians import PositionGaussians
from edgeft.runtime.anomaly.maps import defect_maps
from edgeft.runtime.anomaly.overlay import overlay_png
from edgeft.runtime.anomaly.scores import ImageDistances, normalise, normalise_map, raw_scores
from edgeft.runtime.anomaly.search import NearestSearch
from edgeft.runtime.encoders import ImageEncoder
from edgeft.runtime.engines import EngineSession, open_session
from edgeft.runtime.model_choice import open_chosen_model
from edgeft.runtime.preprocess import ImageInput
from edgeft.targets import Host, TargetProfile

PATCHES, EMBEDDING = "patches", "embedding"  # the feature graph's outputs
# The feature network and the search take turns on the same cores: an engine's threads that
# spin-wait between calls (ONNX Runtime's default) slow the other down (2.2x at batch 1 on
# 2 cores: benchmarks/results/anomaly_elpv_pipeline.md).
SPINNING = False
# What a server answers (v2 outputs): FP32 [N], BOOL [N], FP32 [N, H, W].
SCORE_OUTPUT, DEFECTIVE_OUTPUT, MAP_OUTPUT = "anomaly_score", "defective", "anomaly_map"


@dataclass(frozen=True)
class AnomalyOutputs:
    """A batch's scores ``[N]`` (normalised, the verdict's), raw scores ``[N]`` (what AUROC
    ranks), defect maps ``[N, H, W]`` (normalised), the worst-patch and nearest-good-image
    distances, and ``probabilities`` ``[N, 2]`` (good, defect): the score re-centred on the
    threshold, so the more likely label is the verdict. The prediction log, its drift and
    feedback statistics and the shadow comparison read those, as for a classifier. Sliced by
    rows, so a batcher hands each request its own."""

    scores: np.ndarray
    raw: np.ndarray
    maps: np.ndarray
    patch: np.ndarray
    nearest_good: np.ndarray
    probabilities: np.ndarray
    grids: np.ndarray  # the patch distances [N, h, w] the map is made from
    group: np.ndarray  # the variant of the nearest good image (0 without variants)
    gaussian: np.ndarray  # the worst position's Mahalanobis distance (0 without Gaussians)

    embedding = None  # no monitoring sketch: the score is what drifts

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def concatenate(cls, parts: Sequence[AnomalyOutputs]) -> AnomalyOutputs:
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))

    def __getitem__(self, rows: slice) -> AnomalyOutputs:
        return AnomalyOutputs(*(getattr(self, f.name)[rows] for f in fields(self)))


def verdict_probabilities(scores: np.ndarray, threshold: float) -> np.ndarray:
    """``[N, 2]`` (good, defect) with defect = sigmoid(logit(score) - logit(threshold)): above
    one half exactly when the score is above the threshold."""
    clipped = np.clip(np.asarray(scores, dtype=np.float64), 1e-300, 1 - 1e-16)
    logit = np.log(clipped) - np.log1p(-clipped) - np.log(threshold / (1 - threshold))
    defect = 1.0 / (1.0 + np.exp(-np.clip(logit, -700.0, 700.0)))
    return np.stack([1 - defect, defect], axis=1).astype(np.float32)


@dataclass(frozen=True)
class AnomalyResult:
    """One image: its score in (0, 1), whether it is above the threshold, and its map."""

    score: float
    defective: bool
    threshold: float
    map: np.ndarray
    overlay: Path | None = None  # where ``detect_files`` drew the map over the image

    @property
    def verdict(self) -> str:
        return "defect" if self.defective else "good"

    def to_dict(self) -> dict[str, object]:
        shown = {"score": self.score, "verdict": self.verdict, "threshold": self.threshold}
        return shown | ({"overlay": str(self.overlay)} if self.overlay else {})


def _read_npy(bundle: Bundle, rel: str) -> np.ndarray:
    """A ``.npy`` file of the bundle, never unpickled (``allow_pickle`` off; its bytes were
    checked against the manifest's hash)."""
    try:
        return np.load(bundle.path_of(rel), allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BundleError(f"{bundle.root}: {rel} is not a readable .npy array ({exc})") from None


def load_array(bundle: Bundle, rel: str, shape: tuple[int | None, ...]) -> np.ndarray:
    """A float16/float32 array file of the bundle as float32, of ``shape`` (None: any size,
    but not empty)."""
    array = _read_npy(bundle, rel)
    fits = array.ndim == len(shape) and all(
        n > 0 if want is None else n == want for n, want in zip(array.shape, shape, strict=True)
    )
    if not fits or array.dtype not in (np.float16, np.float32):
        wanted = "x".join("N" if n is None else str(n) for n in shape)
        raise BundleError(
            f"{bundle.root}: {rel} must be a float16/float32 array of shape {wanted} (the "
            f"model's), got {array.dtype} {array.shape}"
        )
    return array.astype(np.float32)


def load_gaussians(
    bundle: Bundle, spec: AnomalySpec, grid: tuple[int, int, int]
) -> PositionGaussians | None:
    """The per-position Gaussians, where the spec has them, for patch features ``(C, h, w)``."""
    if not spec.gaussian_channels:
        return None
    width, h, w = grid
    channels = np.array(spec.gaussian_channels, dtype=np.int64)
    if channels.min() < 0 or channels.max() >= width:
        raise BundleError(f"{bundle.root}: gaussian_channels must be below {width}")
    shape = (max(1, len(spec.groups)), h // spec.gaussian_pool, w // spec.gaussian_pool)
    d = len(channels)
    mean = load_array(bundle, spec.gaussian_mean, (*shape, d))
    precision = load_array(bundle, spec.gaussian_precision, (*shape, d, d))
    return PositionGaussians(channels, mean, precision, spec.gaussian_pool)


def load_groups(bundle: Bundle, spec: AnomalySpec, rows: int) -> np.ndarray:
    """Each embedding row's variant index (all 0 without variants); checked to name a known
    variant per row and to leave none without rows."""
    if not spec.groups:
        return np.zeros(rows, dtype=np.int64)
    rel = spec.embedding_groups
    owners = _read_npy(bundle, rel)
    if owners.shape != (rows,) or owners.dtype.kind not in "iu":
        raise BundleError(f"{bundle.root}: {rel} must hold one integer per embedding row")
    if set(np.unique(owners).tolist()) != set(range(len(spec.groups))):
        raise BundleError(
            f"{bundle.root}: {rel} must give each of the {len(spec.groups)} variants rows, "
            "and no others"
        )
    return owners


class AnomalyHead:
    """What follows the feature network on the box: the chunked nearest-neighbour searches on
    ``engine`` (the bundle's distance graph over its banks), the scores and the maps. Apart
    from the network, so an int8 candidate's features can be scored as the box scores them."""

    def __init__(
        self,
        bundle: Bundle,
        engine: str,
        threads: int | None = None,
        entry: ModelEntry | None = None,
    ) -> None:
        """``entry``: the feature model it follows, whose own scales (an int8 model's) apply."""
        assert bundle.manifest.anomaly is not None
        spec = bundle.manifest.anomaly
        self.spec = spec if entry is None else spec.for_model(entry.details)
        distance = open_session(
            engine, bundle.path_of(self.spec.distance), threads=threads, precision="fp32",
            spinning=False,
        )  # fmt: skip
        shapes = {t.name: t.shape for t in bundle.manifest.outputs}
        rows = self.spec.search_rows
        patch_bank = load_array(bundle, self.spec.bank, (None, int(shapes[PATCHES][1])))
        embeddings = load_array(bundle, self.spec.embeddings, (None, int(shapes[EMBEDDING][1])))
        grid = tuple(int(n) for n in shapes[PATCHES][1:])
        self.gaussians = load_gaussians(bundle, self.spec, grid)  # type: ignore[arg-type]
        self.patch_search = NearestSearch(distance, patch_bank, rows)
        owners = load_groups(bundle, self.spec, len(embeddings))
        self.embedding_searches = [
            NearestSearch(distance, embeddings[owners == g], rows)
            for g in range(max(1, len(self.spec.groups)))
        ]
        preprocessing = bundle.manifest.preprocessing
        assert isinstance(preprocessing, ImagePreprocessing)
        self.map_size = preprocessing.crop

    def __call__(
        self, patches: np.ndarray, embedding: np.ndarray, *, spec: AnomalySpec | None = None
    ) -> AnomalyOutputs:
        """The feature graph's outputs -> scores (at the threshold) and maps, on this head's
        scales or ``spec``'s."""
        spec = spec or self.spec
        n, c, h, w = patches.shape
        queries = patches.transpose(0, 2, 3, 1).reshape(-1, c)
        grids = self.patch_search.distances(queries).reshape(n, h, w)
        patch = grids.reshape(n, -1).max(axis=1)
        nearest = np.stack([search.distances(embedding) for search in self.embedding_searches])
        nearest_good, group = nearest.min(axis=0), nearest.argmin(axis=0)
        gaussian = None
        if self.gaussians is not None:
            distances = self.gaussians.distances(queries.reshape(n, h, w, c), group)
            gaussian = distances.reshape(n, -1).max(axis=1)
        raw = raw_scores(spec, ImageDistances(patch, nearest_good, gaussian, group))
        maps = normalise_map(spec, defect_maps(grids, self.map_size, spec.map_sigma))
        scores = normalise(spec, raw)
        probabilities = verdict_probabilities(scores, spec.threshold)
        return AnomalyOutputs(
            scores, raw, maps, patch, nearest_good, probabilities, grids, group,
            np.zeros(n) if gaussian is None else gaussian,
        )  # fmt: skip


class AnomalyPipeline(EngineSession):
    """The feature network and the search as one engine session, outputs ``[scores, maps]``:
    what ``bench`` times and probes for an anomaly bundle, so its latency, cold start and
    memory include the search, as the box pays them."""

    def __init__(self, features: EngineSession, head: AnomalyHead) -> None:
        self.features, self.head = features, head
        self.engine = features.engine

    @property
    def input_names(self) -> list[str]:
        return self.features.input_names

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        outputs = self.head(*self.features.run(inputs)[:2])
        return [outputs.scores, outputs.maps]


class AnomalyDetector:
    """Loads (and verifies) an anomaly bundle, opens its feature network and distance graph on
    one engine and scores images. Arguments as ``Predictor``'s, and ``entry`` to run one given
    model of the bundle."""

    def __init__(
        self,
        bundle: str | Path | Bundle,
        engine: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
        target: TargetProfile | None = None,
        allow_mismatch: bool = False,
        host: Host | None = None,
        entry: ModelEntry | None = None,
    ) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        manifest = self.bundle.manifest
        if manifest.anomaly is None:
            raise EdgeftError(f"{self.bundle.root}: a {manifest.task} bundle, not an anomaly one")
        self.spec: AnomalySpec = manifest.anomaly
        self.choice, self.session = open_chosen_model(
            self.bundle, engine, precision, threads, target, allow_mismatch, host, entry,
            spinning=SPINNING,
        )  # fmt: skip
        self.model = self.choice.entry
        self.labels = manifest.labels
        self.encoder = ImageEncoder(manifest.preprocessing, manifest.inputs[0].name)  # type: ignore[arg-type]
        self.head = AnomalyHead(self.bundle, self.model.engine, threads, self.model)
        self.map_size = self.head.map_size

    @property
    def threshold(self) -> float:
        return self.spec.threshold

    temperature = 1.0  # the prediction log records it; the score is calibrated by its threshold

    def output_specs(self) -> list[TensorSpec]:
        """What ``output_tensors`` serves: the score, the verdict and the defect map."""
        height, width = self.map_size
        return [
            TensorSpec(SCORE_OUTPUT, (-1,), "float32"),
            TensorSpec(DEFECTIVE_OUTPUT, (-1,), "bool"),
            TensorSpec(MAP_OUTPUT, (-1, height, width), "float32"),
        ]

    def output_tensors(self, outputs: AnomalyOutputs) -> dict[str, np.ndarray]:
        return {
            SCORE_OUTPUT: outputs.scores.astype(np.float32),
            DEFECTIVE_OUTPUT: outputs.scores > self.threshold,
            MAP_OUTPUT: outputs.maps.astype(np.float32),
        }

    def rows(self, outputs: AnomalyOutputs, top_k: int = 1) -> list[dict[str, object]]:
        """Each item's score, verdict and threshold, as ``predict --json`` and ``/v1`` show them."""
        return [r.to_dict() for r in self.results(outputs)]

    def warm_up(self, batch_sizes: Sequence[int] = (1,)) -> None:
        sample = self.encoder.sample()
        for size in dict.fromkeys(batch_sizes):
            self.outputs(self.encoder.encode([sample] * size))

    def outputs(self, inputs: Mapping[str, np.ndarray]) -> AnomalyOutputs:
        """Encoded images -> scores and maps: one feature call, then the chunked searches."""
        patches, embedding = self.session.run(inputs)[:2]
        return self.head(patches, embedding)

    def outputs_of(
        self,
        items: Sequence[ImageInput],
        batch: int = 16,
        advance: Callable[[int], object] | None = None,
    ) -> AnomalyOutputs:
        """Outputs for many images, ``batch`` at a time (``advance`` is told each batch's size)."""
        parts = []
        for start in range(0, len(items), batch):
            parts.append(self.outputs(self.encoder.encode(items[start : start + batch])))
            if advance is not None:
                advance(len(parts[-1]))
        return AnomalyOutputs.concatenate(parts)

    def results(self, outputs: AnomalyOutputs) -> list[AnomalyResult]:
        return [
            AnomalyResult(float(s), bool(s > self.threshold), self.threshold, m)
            for s, m in zip(outputs.scores, outputs.maps, strict=True)
        ]

    def detect(self, items: Sequence[ImageInput]) -> list[AnomalyResult]:
        """Images (paths, bytes, PIL, uint8 arrays) -> score, verdict and map of each."""
        return self.results(self.outputs(self.encoder.encode(items)))

    def overlay_png(self, item: ImageInput, result: AnomalyResult) -> bytes:
        """``result``'s map drawn over the part of ``item`` the model saw, as PNG bytes."""
        return overlay_png(item, result.map, self.threshold, self.encoder.preprocess)

    def overlays_base64(self, items: Sequence[ImageInput], outputs: AnomalyOutputs) -> list[str]:
        """Each item's map drawn over it, as base64 PNG (for a JSON answer)."""
        return [
            base64.b64encode(self.overlay_png(item, result)).decode("ascii")
            for item, result in zip(items, self.results(outputs), strict=True)
        ]

    def detect_files(
        self, paths: Sequence[Path], overlay: Path | None = None
    ) -> list[AnomalyResult]:
        """``detect`` on image files; with ``overlay``, each map drawn over its image is written
        there as ``<name>.overlay.png`` (``<name>-2.overlay.png`` for a repeated name)."""
        results = self.detect(paths)
        if overlay is None:
            return results
        overlay.mkdir(parents=True, exist_ok=True)
        written, named = [], set()
        for path, result in zip(paths, results, strict=True):
            stem, count = path.stem, 1
            while stem in named:
                count += 1
                stem = f"{path.stem}-{count}"
            named.add(stem)
            target = overlay / f"{stem}.overlay.png"
            replace_atomically(
                target, partial(Path.write_bytes, data=self.overlay_png(path, result))
            )
            written.append(replace(result, overlay=target))
        return written

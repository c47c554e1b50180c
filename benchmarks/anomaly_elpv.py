"""Anomaly detection from good cells only on ELPV: which backbone layers, image size, coreset size
and scoring (worst patch, image embedding, a mix) separate defective solar cells from good ones.

Fits on the functional cells (defect probability 0) of ELPV's train split, scores the test split:
image AUROC of p=1 cells against good test cells, of p>=2/3, of any defect, and p=1 per module
type. Each configuration is one row; results go to benchmarks/results/anomaly_elpv.{json,md}.

    .venv/bin/python benchmarks/anomaly_elpv.py                # the configurations below
    .venv/bin/python benchmarks/anomaly_elpv.py --only base    # one of them
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from edgeft.anomaly.detection_metrics import auroc
from edgeft.anomaly.gaussians import fit_gaussians
from edgeft.anomaly.patchcore import PatchCoreSettings, fit_patchcore
from edgeft.data.elpv import materialise_elpv
from edgeft.runtime.anomaly.nearest import nearest_distances
from edgeft.targets import host_fingerprint
from edgeft.zoo import get_model

RESULTS = Path(__file__).parent / "results"
EXPANDED = ("features.7.conv.0", "features.14.conv.0")  # inside the blocks: 192 + 576 ch


@dataclass(frozen=True)
class Setting:
    name: str
    settings: PatchCoreSettings
    model: str = "mobilenet_v2"
    image_weight: float = 0.5  # the embedding score's share in the mixed score
    per_type: bool = False  # one bank (and Gaussians) per module type (mono, poly)
    scales_per_type: bool = False  # scores standardised on each module type's good cells
    bank_precision: str = "fp32"  # fp16 or int8 (per channel): the bank as it would be stored
    gaussians: int | None = None  # PaDiM-style Gaussians per position on this many channels
    gaussian_pool: int = 1  # the Gaussians on the grid averaged over pool x pool patches


BANK_1500 = PatchCoreSettings(bank_size=1500)
SETTINGS = [
    Setting("blocks 6+13", PatchCoreSettings()),  # the probe, and the default
    Setting("expansions 7+14", PatchCoreSettings(taps=EXPANDED)),
    Setting("blocks 6+10+13", PatchCoreSettings(taps=("features.6", "features.10", "features.13"))),
    Setting("blocks 3+6+13", PatchCoreSettings(taps=("features.3", "features.6", "features.13"))),
    Setting("5x5 neighbourhood", PatchCoreSettings(aggregate=5)),
    Setting("320 px", PatchCoreSettings(image_size=320)),
    Setting("bank 10k", PatchCoreSettings(bank_size=10_000)),
    Setting("bank fp16", PatchCoreSettings(), bank_precision="fp16"),
    Setting("bank int8", PatchCoreSettings(), bank_precision="int8"),
    Setting("scales per module type", PatchCoreSettings(), scales_per_type=True),
    Setting("per module type, 2x1500", BANK_1500, per_type=True, scales_per_type=True),
    Setting("per module type, 2x3000", PatchCoreSettings(), per_type=True, scales_per_type=True),
    Setting("gaussians 64 ch", PatchCoreSettings(), gaussians=64),
    Setting(
        "gaussians 64 ch, scales per type", PatchCoreSettings(), gaussians=64, scales_per_type=True
    ),
    Setting(
        "gaussians 128 ch, per module type",
        BANK_1500,
        gaussians=128,
        per_type=True,
        scales_per_type=True,
    ),
    Setting(
        "gaussians 128 ch on 4x4-pooled patches, per module type",
        BANK_1500,
        gaussians=128,
        gaussian_pool=4,
        per_type=True,
        scales_per_type=True,
    ),
]


BYTES = {"fp32": 4, "fp16": 2, "int8": 1}


def stored(bank: np.ndarray, precision: str) -> np.ndarray:
    """The bank as its stored precision gives it back."""
    if precision == "fp16":
        return bank.astype(np.float16).astype(np.float32)
    if precision == "int8":
        scale = np.abs(bank).max(axis=0) / 127
        return (np.round(bank / scale).clip(-127, 127) * scale).astype(np.float32)
    return bank


def gaussian_scores(
    good: np.ndarray, queries: np.ndarray, channels: int, pool: int = 1
) -> np.ndarray:
    """PaDiM: a Gaussian per grid position (of the grid averaged over ``pool`` x ``pool``
    patches) over ``channels`` random channels of the good patches ``[N, h, w, C]``; each
    query image's worst Mahalanobis distance."""
    gaussians = fit_gaussians(good, channels, pool=pool)
    return gaussians.distances(queries).reshape(len(queries), -1).max(axis=1)


def run(setting: Setting, root: Path) -> dict[str, object]:
    with open(root / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # the test cells, then the validation cells whose good ones give each score its scale
    scored_rows = [r for r in rows if r["split"] == "test"] + [
        r for r in rows if r["split"] == "val"
    ]
    is_test = np.array([r["split"] == "test" for r in scored_rows])
    all_probability = np.array([float(r["defect_probability"]) for r in scored_rows])
    all_module = np.array([r["module_type"] for r in scored_rows])
    probability, module = all_probability[is_test], all_module[is_test]
    good = probability == 0
    # one group of everything, or one per module type: its good train cells and its cells
    kinds = sorted(set(module)) if setting.per_type else [None]
    parts = {name: np.zeros(len(scored_rows)) for name in ("patch", "embedding", "gaussian")}
    fit_s = score_s = bank_mb = 0.0
    nearest_good = {}  # per kind: each cell's distance to that kind's nearest good image
    for kind in kinds:
        good_train = [
            root / r["file"]
            for r in rows
            if r["split"] == "train"
            and float(r["defect_probability"]) == 0
            and kind in (None, r["module_type"])
        ]
        rows_of = np.flatnonzero(all_module == kind) if kind else np.arange(len(scored_rows))
        backbone = get_model(setting.model).create(num_classes=None, pretrained=True)
        with Progress(transient=True) as progress:
            started = time.perf_counter()
            model = fit_patchcore(backbone, good_train, setting.settings, progress)
            fitted = time.perf_counter()
            patches, embeddings = model.features([root / scored_rows[i]["file"] for i in rows_of])
            n, h, w, c = patches.shape
            bank = stored(model.bank, setting.bank_precision)
            grids = nearest_distances(patches.reshape(-1, c), bank).reshape(n, h, w)
            parts["patch"][rows_of] = grids.reshape(n, -1).max(axis=1)
            parts["embedding"][rows_of] = nearest_distances(embeddings, model.embeddings)
            nearest_good[kind] = (rows_of, embeddings, model.embeddings)
            scored = time.perf_counter()
            if setting.gaussians:
                good_patches, _ = model.features(good_train, progress, "good parts")
                parts["gaussian"][rows_of] = gaussian_scores(
                    good_patches, patches, setting.gaussians, setting.gaussian_pool
                )
        fit_s += fitted - started
        score_s += scored - fitted
        bank_mb += model.bank.size * BYTES[setting.bank_precision] / 1e6
    groups = [all_module == k for k in sorted(set(module))] if setting.scales_per_type else [None]
    good_val = ~is_test & (all_probability == 0)

    def z(x: np.ndarray) -> np.ndarray:  # test cells, standardised on good validation cells
        out = np.empty_like(x)
        for group in groups:
            rows_in = np.ones(len(x), bool) if group is None else group
            reference = x[rows_in & good_val]
            out[rows_in] = (x[rows_in] - reference.mean()) / reference.std()
        return out[is_test]

    weight = setting.image_weight
    scorings = {
        "patch": z(parts["patch"]),
        "embedding": z(parts["embedding"]),
        "mixed": (1 - weight) * z(parts["patch"]) + weight * z(parts["embedding"]),
    }
    if setting.gaussians:
        scorings["gaussian"] = z(parts["gaussian"])
        scorings["gaussian mixed"] = (scorings["mixed"] * 2 + z(parts["gaussian"])) / 3

    def figures(score: np.ndarray) -> dict[str, float]:
        out = {}
        for name, defect in (
            ("p=1", probability == 1),
            ("p>=2/3", probability >= 0.6),
            ("any", probability > 0),
        ):
            out[name] = auroc(score[good | defect], defect[good | defect])
        for kind in ("mono", "poly"):
            keep = (module == kind) & (good | (probability == 1))
            out[f"p=1 {kind}"] = auroc(score[keep], probability[keep] == 1)
        return out

    routed = None
    if setting.per_type:  # the type a box would take: the nearest good image's, of any type
        every = np.zeros((len(scored_rows), len(kinds)))
        for rows_of, embeddings, _ in nearest_good.values():
            for column, (_, _, good_images) in enumerate(nearest_good.values()):
                every[rows_of, column] = nearest_distances(embeddings, good_images)
        routed = float((np.array(kinds)[every.argmin(axis=1)] == all_module).mean())
    cells = (h // setting.gaussian_pool) * (w // setting.gaussian_pool)
    gaussian_mb = len(kinds) * cells * (setting.gaussians or 0) ** 2 * 4 / 1e6
    return {
        "name": setting.name,
        "model": setting.model,
        "settings": asdict(setting.settings),
        "grid": [h, w],
        "channels": int(model.bank.shape[1]),
        "bank_mb": round(bank_mb + gaussian_mb, 2),
        "train_images": int(
            sum(float(r["defect_probability"]) == 0 for r in rows if r["split"] == "train")
        ),
        "fit_s": round(fit_s, 1),
        "score_ms_per_image": round(1000 * score_s / len(scored_rows), 1),
        "type_from_nearest_good": routed,
        "scorings": {name: figures(score) for name, score in scorings.items()},
    }


COLUMNS = ("p=1", "p>=2/3", "any", "p=1 mono", "p=1 poly")


def markdown(results: list[dict]) -> str:
    """The table of every setting and scoring, with the host and command."""
    lines = [
        "# ELPV, fitted on good cells only: image AUROC on the test split",
        "",
        "Fit on the 1,018 functional cells (p=0) of the train split; test: 377 good cells against",
        "179 p=1, 26 p=2/3 and 74 p=1/3 cells. Each score is put in units of its spread over the",
        "good cells of the validation split (as `finetune --task anomaly` calibrates), never the",
        "test cells. `patch`: the worst patch's distance to the memory bank; `embedding`: the pooled",
        "image embedding's distance to the nearest good image; `mixed`: the two averaged;",
        "`gaussian`: PaDiM, the worst Mahalanobis distance to a Gaussian per grid position over",
        "random channels of the same patch features; `gaussian mixed`: all three averaged.",
        "`bank fp16`/`int8` (per channel): the bank as it would be stored. `scales per module",
        "type`: each cell scaled by its module type's good validation cells; `per module type`:",
        "also the bank (and Gaussians) fitted per type. A box need not be told the type: the",
        "nearest good training image's is right for the share in the json's",
        "`type_from_nearest_good`. `bank MB` counts",
        "the Gaussians' inverse covariances (fp32). Times are wall-clock on the host below",
        "(scoring: per test and validation image, with decoding and features).",
        "",
        "Command: `.venv/bin/python benchmarks/anomaly_elpv.py`",
        "",
        "| setting | scoring | " + " | ".join(COLUMNS) + " | bank MB | fit s | score ms/image |",
        "|---|---|" + "---|" * (len(COLUMNS) + 3),
    ]
    for r in results:
        for scoring, f in r["scorings"].items():
            lines.append(
                f"| {r['name']} | {scoring} | "
                + " | ".join(f"{f[k]:.3f}" for k in COLUMNS)
                + f" | {r['bank_mb']} | {r['fit_s']} | {r['score_ms_per_image']} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="parts of setting names to run")
    args = parser.parse_args()
    root = materialise_elpv()
    console = Console()
    path = RESULTS / "anomaly_elpv.json"
    host = host_fingerprint()
    kept = json.loads(path.read_text()) if path.is_file() else {}
    by_name = {r["name"]: r for r in kept.get("results", [])} if kept.get("host") == host else {}
    for setting in SETTINGS:
        if args.only and not any(o in setting.name for o in args.only):
            continue
        by_name[setting.name] = run(setting, root)
        console.print(json.dumps(by_name[setting.name]))
    order = [s.name for s in SETTINGS]
    results = sorted(
        by_name.values(), key=lambda r: order.index(r["name"]) if r["name"] in order else len(order)
    )
    table = Table(title="ELPV, good-only fit: image AUROC on the test split")
    for column in ("setting", "scoring", *COLUMNS, "bank MB", "fit s"):
        table.add_column(column)
    for r in results:
        for scoring, f in r["scorings"].items():
            table.add_row(
                r["name"],
                scoring,
                *(f"{f[k]:.3f}" for k in COLUMNS),
                str(r["bank_mb"]),
                str(r["fit_s"]),
            )
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps({"host": host, "results": results}, indent=2) + "\n")
    (RESULTS / "anomaly_elpv.md").write_text(markdown(results) + f"\nHost: `{json.dumps(host)}`\n")


if __name__ == "__main__":
    main()

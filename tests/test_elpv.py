"""The built-in ELPV demo dataset, materialised offline from its package."""

import csv
from collections import Counter
from pathlib import Path

from edgeft.data import load_dataset, materialise_elpv
from edgeft.data.elpv import read_elpv_labels


def test_elpv_binary_follows_the_deitsch_split() -> None:
    dataset = load_dataset("elpv")
    sizes = {s: len(v) for s, v in dataset.splits.items()}
    assert sum(sizes.values()) == len(read_elpv_labels()) == 2624
    assert abs(sizes["test"] / 2624 - 0.25) < 0.005
    assert abs(sizes["val"] / (sizes["train"] + sizes["val"]) - 0.10) < 0.005
    assert dataset.classes == ["defective", "functional"]
    shares = {s: c["defective"] / sum(c.values()) for s, c in dataset.counts().items()}
    assert max(shares.values()) - min(shares.values()) < 0.01
    assert dataset.split_recipe["licence"] == "CC-BY-NC-SA-4.0"


def test_elpv_labels_and_metadata_agree_with_the_package(tmp_path: Path) -> None:
    root = materialise_elpv("elpv", tmp_path / "elpv")
    truth = {c.file.name: c.probability for c in read_elpv_labels()}
    with open(root / "metadata.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2624
    for row in rows:
        assert (root / row["file"]).is_file()
        assert float(row["defect_probability"]) == truth[Path(row["file"]).name]
        assert row["label"] == (
            "defective" if truth[Path(row["file"]).name] >= 0.5 else "functional"
        )
    uncertain = Counter(r["split"] for r in rows if r["defect_probability"] not in ("0.0", "1.0"))
    assert abs(uncertain["test"] / sum(uncertain.values()) - 0.25) < 0.01
    assert materialise_elpv("elpv", root) == root  # second call reuses, does not rewrite


def test_elpv4_has_the_four_probability_levels() -> None:
    dataset = load_dataset("elpv4")
    assert dataset.classes == ["p0", "p100", "p33", "p67"]
    assert load_dataset("elpv4").fingerprints == dataset.fingerprints

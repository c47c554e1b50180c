"""Anomaly detection's core on a small MVTec-layout folder made here: good textures, synthetic
scratches with masks. The folder's checks, the chunked search, the coreset and a fitted model
that finds the scratches (image scores and the defect map's peak)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from edgeft.anomaly import PatchCoreSettings, fit_patchcore, read_inspection_folder
from edgeft.anomaly.coreset import greedy_coreset
from edgeft.anomaly.detection_metrics import (
    auroc,
    f1_best_threshold,
    pixel_auroc,
    pro_auc,
)
from edgeft.anomaly.gaussians import RIDGE, fit_gaussians
from edgeft.errors import DatasetError, EdgeftError
from edgeft.runtime.anomaly.nearest import nearest_distances
from edgeft.runtime.anomaly.threshold import threshold_at_false_reject
from edgeft.zoo import get_model
from tests.inspection_parts import SIZE, make_folder, texture


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("parts"))


def test_the_folder_reads_as_mvtec_lays_it_out(parts: Path) -> None:
    folder = read_inspection_folder(parts, val_share=0.25)
    assert len(folder.train) == 18 and len(folder.val) == 6  # a recorded share of train/good
    assert not any(i.is_defective for i in folder.val)
    assert folder.val_recipe["val_share"] == 0.25 and folder.defects == ["scratch"]
    scratches = [i for i in folder.test if i.is_defective]
    assert len(scratches) == 6 and all(i.mask is not None for i in scratches)
    assert folder.size == (SIZE, SIZE) and folder.mode == "RGB"
    again = read_inspection_folder(parts, val_share=0.25)
    assert again.val == folder.val  # the same split from the same seed
    with_defects = read_inspection_folder(parts, val_share=0.25, defects_to_val=0.5)
    assert sum(i.is_defective for i in with_defects.val) == 3
    assert sum(i.is_defective for i in with_defects.test) == 3


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: (r / "train" / "crack").mkdir(), "holds crack beside good"),
        (lambda r: [p.unlink() for p in (r / "train" / "good").iterdir()], "no good images"),
        (lambda r: Image.new("L", (SIZE, SIZE)).save(r / "ground_truth/scratch/999_mask.png"),
         "no image test/scratch/999"),
        (lambda r: Image.new("L", (SIZE, 50)).save(r / "ground_truth/scratch/000_mask.png"),
         "000_mask.png: 96x50, but its image 000.png"),
        (lambda r: texture(0).resize((80, 80)).save(r / "test/good/000.png"), "every image"),
        (lambda r: texture(0).convert("L").save(r / "test/good/000.png"), "share one size and mode"),
        (lambda r: (r / "test/good/000.png").write_bytes(b"not a png"), "not a readable image"),
        (lambda r: texture(0).save(r / "train" / "loose.png"), "images go in"),
    ],
)  # fmt: skip
def test_a_bad_folder_is_refused_naming_the_file(tmp_path: Path, damage, message: str) -> None:
    root = make_folder(tmp_path / "parts", good=4, test_good=1, defects=1)
    damage(root)
    with pytest.raises(DatasetError, match=message):
        read_inspection_folder(root)


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float32, st.tuples(st.integers(1, 30), st.integers(1, 8)), elements=st.floats(-9, 9, width=32)),
    arrays(np.float32, st.tuples(st.integers(1, 50), st.integers(1, 8)), elements=st.floats(-9, 9, width=32)),
    st.integers(4, 4096),
)  # fmt: skip
def test_the_chunked_search_is_the_brute_force_one(
    queries: np.ndarray, bank: np.ndarray, max_bytes: int
) -> None:
    width = min(queries.shape[1], bank.shape[1])
    queries, bank = queries[:, :width], bank[:, :width]
    brute = np.sqrt(((queries[:, None, :] - bank[None]) ** 2).sum(-1)).min(axis=1)
    found = nearest_distances(queries, bank, max_bytes=max_bytes)
    np.testing.assert_allclose(found, brute, rtol=1e-3, atol=2e-2)


@settings(max_examples=20, deadline=None)
@given(
    images=st.integers(3, 30), h=st.integers(1, 5), w=st.integers(1, 5), pool=st.integers(1, 2),
    width=st.integers(1, 12), channels=st.integers(1, 12), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_position_gaussians_are_the_textbook_mahalanobis_distance(
    images: int, h: int, w: int, pool: int, width: int, channels: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    h, w = h * pool, w * pool
    # two variants, each with its own means: one Gaussian set per variant
    groups = np.arange(2 * images) % 2
    centres = rng.normal(0, 3, (2, h, w, width))
    good = rng.normal(centres[groups], rng.uniform(0.2, 2, width)).astype(np.float32)
    queries = rng.normal(0, 3, (6, h, w, width)).astype(np.float32)
    asked = np.arange(6) % 2
    gaussians = fit_gaussians(good, channels, seed, pool, groups)
    chosen = gaussians.channels
    assert len(chosen) == min(channels, width) == len(set(chosen.tolist()))
    found = gaussians.distances(queries, asked)
    assert found.shape == (6, h // pool, w // pool)
    blocks = (len(good), h // pool, pool, w // pool, pool, len(chosen))
    pooled_good = good[..., chosen].reshape(blocks).mean(axis=(2, 4))
    pooled_queries = queries[..., chosen].reshape((6, *blocks[1:])).mean(axis=(2, 4))
    for g in (0, 1):
        for y in range(h // pool):
            for x in range(w // pool):
                cell = pooled_good[groups == g, y, x].astype(np.float64)
                covariance = np.atleast_2d(np.cov(cell, rowvar=False)) + RIDGE * np.eye(len(chosen))
                centred = pooled_queries[asked == g, y, x] - cell.mean(axis=0)
                textbook = np.sqrt(
                    np.einsum("ni,ij,nj->n", centred, np.linalg.inv(covariance), centred)
                )
                np.testing.assert_allclose(found[asked == g, y, x], textbook, rtol=2e-3, atol=2e-3)


def test_the_coreset_covers_better_than_a_random_subset() -> None:
    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(c, 0.1, (400, 16)) for c in range(10)]).astype(np.float32)
    points = torch.from_numpy(blobs)
    chosen = greedy_coreset(points, 10)
    assert len(set(chosen.tolist())) == 10
    covered = nearest_distances(blobs, blobs[chosen.numpy()]).max()
    random_subset = rng.choice(len(blobs), 10, replace=False)
    assert covered < nearest_distances(blobs, blobs[random_subset]).max()
    assert {round(float(blobs[i].mean())) for i in chosen} == set(range(10))  # one per blob


def test_a_fitted_model_finds_the_scratches_and_where_they_are(parts: Path) -> None:
    folder = read_inspection_folder(parts)
    backbone = get_model("mobilenet_v2").create(num_classes=None)
    tuned = PatchCoreSettings(image_size=SIZE, bank_size=500, sample=20_000)
    model = fit_patchcore(backbone, folder.train, tuned)
    assert model.bank.shape[0] == 500 and model.embeddings.shape[0] == len(folder.train)
    scores = model.score([i.path for i in folder.test])
    defective = np.array([i.is_defective for i in folder.test])
    assert scores.patch[defective].min() > scores.patch[~defective].max()
    for item, defect_map in zip(folder.test, scores.maps, strict=True):
        if item.mask is None:
            continue
        mask = np.asarray(Image.open(item.mask).resize(defect_map.shape[::-1], Image.BILINEAR))
        peak = np.unravel_index(defect_map.argmax(), defect_map.shape)
        assert (
            mask[peak] > 0
            or mask[max(0, peak[0] - 1) : peak[0] + 2, max(0, peak[1] - 1) : peak[1] + 2].any()
        )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.booleans()), min_size=2, max_size=60))
def test_auroc_is_sklearns_and_the_f1_threshold_is_the_best_cut(rows: list) -> None:
    from sklearn.metrics import f1_score, roc_auc_score

    scores = np.array([float(s) for s, _ in rows])
    defective = np.array([d for _, d in rows])
    if defective.all() or not defective.any():
        with pytest.raises(EdgeftError, match="both defective and good"):
            auroc(scores, defective)
        return
    assert auroc(scores, defective) == pytest.approx(roc_auc_score(defective, scores))
    cut = f1_best_threshold(scores, defective)
    cuts = np.unique(np.concatenate([scores - 0.5, scores + 0.5]))
    best = max(f1_score(defective, scores > c, zero_division=0) for c in cuts)
    assert f1_score(defective, scores > cut, zero_division=0) == pytest.approx(best)


def test_pixel_figures_reward_a_map_on_the_defect() -> None:
    masks = np.zeros((4, 32, 32), dtype=bool)
    masks[0, 4:8, 4:8] = masks[1, 20:30, 2:4] = True  # a small and a long region
    rng = np.random.default_rng(0)
    exact = masks + rng.uniform(0, 0.1, masks.shape)
    assert pixel_auroc(exact, masks) == 1.0 and pro_auc(exact, masks) == pytest.approx(
        1.0, abs=0.02
    )
    noise = rng.uniform(0, 1, masks.shape)
    assert abs(pixel_auroc(noise, masks) - 0.5) < 0.1 and pro_auc(noise, masks) < 0.3
    big_only = masks.astype(float)
    big_only[0] = 0  # misses the small region: it counts as much as the long one in PRO
    assert 0.5 < pro_auc(big_only + rng.uniform(0, 0.1, masks.shape), masks) < 0.7
    good_parts = rng.uniform(0, 1, 50)
    threshold = threshold_at_false_reject(good_parts, 0.1)
    assert (good_parts > threshold).mean() == pytest.approx(0.1, abs=0.02)

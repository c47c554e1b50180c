from pathlib import Path

import numpy as np
import pytest

from edgeft.data import inspect_dataset, load_dataset, load_image_folder
from edgeft.errors import DatasetError
from edgeft.runtime import ImageDecodeError, decode_image
from tests.conftest import make_image_folder, write_image


def test_flat_folder_is_split_70_15_15_and_recorded(image_folder: Path) -> None:
    dataset = load_image_folder(image_folder, seed=7)
    assert dataset.classes == ["dent", "ok", "scratch"]
    counts = dataset.counts()
    assert dict(counts["train"]) == {"ok": 14, "scratch": 7, "dent": 7}
    assert sum(counts["val"].values()) + sum(counts["test"].values()) == 12
    assert dataset.split_recipe == {
        "method": "stratified",
        "fractions": [0.7, 0.15, 0.15],
        "seed": 7,
    }
    again = load_image_folder(image_folder, seed=7)
    assert again.fingerprints == dataset.fingerprints
    assert load_image_folder(image_folder, seed=8).fingerprints != dataset.fingerprints


def test_split_layout_is_used_as_given_and_missing_val_is_carved(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "train", {"a": 10, "b": 10})
    make_image_folder(tmp_path / "test", {"a": 2, "b": 2}, first_seed=100)
    dataset = load_image_folder(tmp_path)
    assert {s: len(v) for s, v in dataset.splits.items()} == {"train": 16, "test": 4, "val": 4}
    assert dataset.split_recipe["carved_from_train"] == ["val"]
    assert not {e.item for e in dataset.splits["train"]} & {e.item for e in dataset.splits["val"]}


def test_label_in_test_absent_from_train_is_an_error(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "train", {"a": 5, "b": 5})
    make_image_folder(tmp_path / "test", {"a": 2, "c": 2})
    with pytest.raises(DatasetError, match=r"classes \['c'\] do not appear in train"):
        load_image_folder(tmp_path)


def test_empty_and_single_class_folders_are_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no class folders"):
        load_image_folder(tmp_path / "empty")
    (tmp_path / "hollow" / "a").mkdir(parents=True)
    with pytest.raises(DatasetError, match="holds no images"):
        load_image_folder(tmp_path / "hollow")
    make_image_folder(tmp_path / "one", {"only": 6})
    with pytest.raises(DatasetError, match="at least 2 classes"):
        load_image_folder(tmp_path / "one")
    with pytest.raises(DatasetError, match="no such file or folder"):
        load_dataset(tmp_path / "missing")


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16", "RGB"])
def test_every_image_mode_decodes_to_rgb(tmp_path: Path, mode: str) -> None:
    image = decode_image(write_image(tmp_path / "x.png", 1, mode=mode))
    assert image.mode == "RGB" and image.size == (40, 32)


def test_grayscale_becomes_three_equal_channels(tmp_path: Path) -> None:
    pixels = np.asarray(decode_image(write_image(tmp_path / "g.png", 2, mode="L")))
    assert np.array_equal(pixels[..., 0], pixels[..., 2])


def test_corrupt_truncated_and_empty_images_name_the_file(tmp_path: Path) -> None:
    good = write_image(tmp_path / "good.jpg", 3, size=(64, 64)).read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.png").write_text("not an image")
    for name in ("trunc.jpg", "text.png"):
        with pytest.raises(ImageDecodeError, match=name):
            decode_image(tmp_path / name)
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_image(b"")


def test_inspect_reports_unreadable_duplicates_and_imbalance(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "train", {"ok": 30, "bad": 6})
    make_image_folder(tmp_path / "val", {"ok": 3, "bad": 3}, first_seed=100)
    make_image_folder(tmp_path / "test", {"ok": 3, "bad": 3}, first_seed=200)
    leaked = tmp_path / "train" / "ok" / "ok_000.png"
    (tmp_path / "test" / "ok" / "leaked.png").write_bytes(leaked.read_bytes())
    (tmp_path / "train" / "ok" / "broken.png").write_bytes(b"\x89PNG broken")
    report = inspect_dataset(load_image_folder(tmp_path))
    assert report.unreadable == [str(tmp_path / "train" / "ok" / "broken.png")]
    assert [(d[0], d[2]) for d in report.duplicates] == [("train", "test")]
    assert report.duplicates[0][3] == str(tmp_path / "test" / "ok" / "leaked.png")
    assert any("imbalanced" in w for w in report.warnings)
    assert any("appear in two splits" in w for w in report.warnings)


def test_balanced_clean_folder_has_no_warnings(image_folder: Path) -> None:
    report = inspect_dataset(load_image_folder(image_folder))
    assert report.warnings == [] and report.unreadable == [] and report.duplicates == []

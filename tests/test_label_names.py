"""Class labels become folders (image datasets, ``monitor --export-uncertain``): a label that
cannot be one is refused at ``finetune`` and ``export``, and the labelling export never writes
outside ``--out``, whatever label or file name the prediction log holds."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from edgeft.bundle import ImagePreprocessing
from edgeft.bundle.labels import name_problem, safe_folder_name
from edgeft.data import load_dataset
from edgeft.errors import DatasetError, EdgeftError
from edgeft.monitor.active_learning import TO_LABEL, export_for_labelling
from edgeft.monitor.prediction_log import read_log
from tests.conftest import make_image_folder
from tests.test_cli import run
from tests.test_log_damage import one_error, write_log

ESCAPING = "../escaped-label"
UNUSABLE = [
    "",
    ".",
    "..",
    ".hidden",
    ESCAPING,
    "a/b",
    "a\\b",
    "nul\x00byte",
    "two\nlines",
    "x" * 201,
    "half \ud800 a pair",
]
USABLE = ["ok", "scratch-2", "Ölfleck", "a b", "crack (edge)", "x" * 200, "50%"]


@pytest.mark.parametrize("label", UNUSABLE)
def test_a_label_that_cannot_be_a_folder_name_is_named_and_made_safe(label: str) -> None:
    assert name_problem(label) is not None
    folder = safe_folder_name(label)
    assert name_problem(folder) is None and folder != label
    assert safe_folder_name(label + "!") != folder  # distinct labels, distinct folders


@pytest.mark.parametrize("label", USABLE)
def test_a_usable_label_is_its_own_folder(label: str) -> None:
    assert name_problem(label) is None and safe_folder_name(label) == label


def test_finetune_refuses_a_text_label_that_cannot_be_a_folder(tmp_path: Path) -> None:
    table = tmp_path / "tickets.csv"
    rows = [f"ticket {i},{'ok' if i % 2 else ESCAPING}" for i in range(20)]
    table.write_text("text,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(DatasetError, match=r"class '\.\./escaped-label' cannot be a folder"):
        load_dataset(table)
    out = str(tmp_path / "run")
    line = one_error(run("finetune", "--model", "minilm", "--data", str(table), "--out", out))
    assert f"{table}: class '../escaped-label' cannot be a folder name" in line


def test_an_image_class_folder_with_a_line_break_is_refused(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "parts", {"ok": 4, "dent\nmark": 4})
    with pytest.raises(DatasetError, match=r"class 'dent\\nmark' cannot be a folder name"):
        load_dataset(root)


def test_export_refuses_a_network_whose_labels_cannot_be_folders(tmp_path: Path) -> None:
    from torch import nn

    from edgeft.export import ExportSource, export_bundle

    source = ExportSource(
        nn.Linear(3, 2),
        "image-classification",
        ["ok", ESCAPING],
        ImagePreprocessing(crop=(8, 8), resize=8),
        {"base_model": "mine"},
    )
    with pytest.raises(DatasetError, match=r"labels: class '\.\./escaped-label' cannot be"):
        export_bundle(source, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def _log_with_labels(folder: Path, labels: list[str]) -> tuple[Path, list[str]]:
    """A log whose model has ``labels`` (as a bundle exported before the check might), with
    feedback of the first label on its first row and of the last on its second."""
    folder.mkdir()
    log = folder / "log.sqlite"
    return log, write_log(log, "a-bundle", labels)


def test_export_uncertain_keeps_an_escaping_label_inside_out(tmp_path: Path) -> None:
    log, ids = _log_with_labels(tmp_path / "box", [ESCAPING, "ok"])
    out = tmp_path / "box" / "to-label"
    exported = export_for_labelling(log, out, 3)
    assert not (tmp_path / "box" / "escaped-label").exists()
    folder = safe_folder_name(ESCAPING)
    assert exported.renamed == {ESCAPING: folder} and exported.labelled == 2
    assert [p.name for p in (out / folder).iterdir()] == [f"{ids[0]}.png"]
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "log.sqlite" not in str(p)]
    assert all(p.resolve().is_relative_to(out.resolve()) for p in written), written
    assert len(list(out.glob("*.png"))) == 3 and (out / TO_LABEL).is_file()


def test_export_uncertain_never_follows_a_link_out_of_out(tmp_path: Path) -> None:
    log, _ = _log_with_labels(tmp_path / "box", ["dent", "ok"])
    out, elsewhere = tmp_path / "to-label", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "ok").symlink_to(elsewhere)  # planted before the export
    with pytest.raises(EdgeftError, match="leads outside"):
        export_for_labelling(log, out, 3)
    assert not list(elsewhere.iterdir())


def test_a_kept_input_name_that_climbs_is_never_read_or_written(tmp_path: Path) -> None:
    log, ids = _log_with_labels(tmp_path / "box", ["dent", "ok"])
    (tmp_path / "secret.png").write_bytes(b"not for the export")
    with closing(sqlite3.connect(log)) as connection, connection:
        connection.execute("UPDATE predictions SET input = '../../secret.png' WHERE seq = 5")
    (version,) = read_log(log)
    assert version.damaged == 1 and "row 5: kept input: '../../secret.png'" in version.damage[0]
    exported = export_for_labelling(log, tmp_path / "out", 100)
    assert exported.damaged == 1 and exported.to_label == len(ids) - 3
    written = [p.read_bytes() for p in (tmp_path / "out").rglob("*.png")]
    assert b"not for the export" not in written

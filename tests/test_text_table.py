import json
from pathlib import Path

import pytest

from edgeft.data import inspect_dataset, load_dataset
from edgeft.errors import DatasetError

TEXTS = {"billing": "my invoice is wrong number {}", "shipping": "parcel {} never arrived"}


def _rows(n: int) -> list[dict[str, str]]:
    return [{"text": TEXTS[label].format(i), "label": label} for label in TEXTS for i in range(n)]


def test_single_csv_is_split_stratified(tmp_path: Path) -> None:
    lines = ["text,label", '"multi-line,\nquoted text",billing']
    lines += [f"{r['text']},{r['label']}" for r in _rows(10)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    dataset = load_dataset(tmp_path / "t.csv")
    assert dataset.kind == "text" and dataset.classes == ["billing", "shipping"]
    assert sum(len(v) for v in dataset.splits.values()) == 21
    assert any("\n" in e.item for v in dataset.splits.values() for e in v)
    assert {c for split in dataset.counts().values() for c in split} == {"billing", "shipping"}


def test_jsonl_split_files_and_duplicate_leak(tmp_path: Path) -> None:
    for split, n in (("train", 6), ("val", 2), ("test", 2)):
        rows = _rows(n) if split == "train" else _rows(n)[::-1]
        (tmp_path / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    report = inspect_dataset(load_dataset(tmp_path))
    assert report.dataset.split_recipe == {"method": "given"}
    assert len(report.duplicates) == 8  # val and test reuse train texts: each one is flagged


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("words,label\nhello,a\n", r"t.csv:2: missing column\(s\) \['text'\]"),
        ("text,label\nhello,\n", "t.csv:2: empty text or label"),
        ("text,label\n", "no rows"),
        ("text,label\nhello,a\nworld,a\nagain,a\n", r"at least 2 labels, found \['a'\]"),
    ],
)
def test_bad_tables_name_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "t.csv").write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_dataset(tmp_path / "t.csv")


def test_bad_jsonl_line_is_named(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text('{"text": "a", "label": "x"}\n{oops\n')
    with pytest.raises(DatasetError, match=r"t.jsonl:2: not valid JSON"):
        load_dataset(tmp_path / "t.jsonl")


def test_unknown_label_in_test_file(tmp_path: Path) -> None:
    for split in ("train", "val"):
        (tmp_path / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in _rows(3)))
    (tmp_path / "test.jsonl").write_text(json.dumps({"text": "new", "label": "returns"}))
    with pytest.raises(DatasetError, match=r"labels \['returns'\] do not appear in train"):
        load_dataset(tmp_path)

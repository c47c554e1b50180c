"""The bundle's ``lowercase`` is applied before tokenizing: a cased tokenizer sees "Invoice" as
an unknown word unless the spec says the model is uncased."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers

from edgeft.bundle import TextPreprocessing
from edgeft.runtime.encoders import TextEncoder


def test_lowercase_is_applied_before_a_cased_tokenizer(tmp_path: Path) -> None:
    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "invoice": 1, "late": 2}, "[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    names = ("input_ids", "attention_mask")
    ids = {
        lowercase: TextEncoder(
            TextPreprocessing("tokenizer.json", lowercase=lowercase),
            tmp_path / "tokenizer.json",
            names,
        )
        .encode(["Invoice LATE"])["input_ids"]
        .tolist()
        for lowercase in (True, False)
    }
    assert ids == {True: [[1, 2]], False: [[0, 0]]}

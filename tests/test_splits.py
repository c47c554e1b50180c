from collections import Counter

import pytest

from edgeft.data import stratified_split
from edgeft.errors import DatasetError


def test_each_split_keeps_the_class_balance() -> None:
    labels = [0] * 70 + [1] * 20 + [2] * 10
    train, val, test = stratified_split(labels, (0.7, 0.15, 0.15), seed=3)
    assert sorted(train + val + test) == list(range(100))
    assert Counter(labels[i] for i in train) == {0: 49, 1: 14, 2: 7}
    for part, fraction in ((val, 0.15), (test, 0.15)):
        counts = Counter(labels[i] for i in part)
        for label, total in ((0, 70), (1, 20), (2, 10)):
            assert abs(counts[label] - total * fraction) < 1


def test_same_seed_same_split_other_seed_other_split() -> None:
    labels = [i % 3 for i in range(90)]
    assert stratified_split(labels, seed=1) == stratified_split(labels, seed=1)
    assert stratified_split(labels, seed=1) != stratified_split(labels, seed=2)


def test_every_split_gets_one_of_a_small_class() -> None:
    labels = [0] * 50 + [1] * 3
    parts = stratified_split(labels, (0.7, 0.15, 0.15), seed=0)
    assert [sum(labels[i] for i in p) for p in parts] == [1, 1, 1]


def test_class_too_small_to_split_is_named() -> None:
    with pytest.raises(DatasetError, match=r"class 'rare' has 2 sample"):
        stratified_split([0] * 10 + [1] * 2, seed=0, names=["common", "rare"])


@pytest.mark.parametrize("fractions", [(0.5, 0.5, 0.5), (1.0, 0.0, 0.0), ()])
def test_bad_fractions_refused(fractions: tuple[float, ...]) -> None:
    with pytest.raises(DatasetError, match="fractions"):
        stratified_split([0, 1, 0, 1], fractions)

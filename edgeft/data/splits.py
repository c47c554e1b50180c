"""Deterministic stratified splits: every class keeps its share in every split."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from edgeft.errors import DatasetError

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.70, 0.15, 0.15)


def stratified_split(
    strata: Sequence[Hashable],
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    names: Sequence[str] | None = None,
) -> list[list[int]]:
    """Indices for each split, drawn per stratum so each split mirrors the class balance.

    Within a stratum counts follow the largest-remainder rule with at least one item per split;
    the same strata, fractions and seed always give the same split. ``names`` label strata in
    errors (a stratum smaller than the number of splits cannot be split).
    """
    if not fractions or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise DatasetError(f"split fractions {tuple(fractions)} must be positive and sum to 1")
    rng = np.random.default_rng(seed)
    by_stratum: dict[Hashable, list[int]] = {}
    for index, stratum in enumerate(strata):
        by_stratum.setdefault(stratum, []).append(index)
    out: list[list[int]] = [[] for _ in fractions]
    for stratum in sorted(by_stratum, key=repr):
        members = by_stratum[stratum]
        if len(members) < len(fractions):
            label = names[stratum] if names is not None else stratum  # type: ignore[index, call-overload]
            raise DatasetError(
                f"class {label!r} has {len(members)} sample(s); at least {len(fractions)} are "
                f"needed to place one in each of {len(fractions)} splits"
            )
        counts = _allocate(len(members), fractions, rng)
        shuffled = rng.permutation(members).tolist()
        start = 0
        for split, count in zip(out, counts, strict=True):
            split.extend(shuffled[start : start + count])
            start += count
    return [sorted(split) for split in out]


def _allocate(n: int, fractions: Sequence[float], rng: np.random.Generator) -> list[int]:
    """Largest-remainder rounding of ``n * fractions``, then at least one per split.

    Ties go to a seeded random split, so no split is favoured across many small classes.
    """
    exact = [n * f for f in fractions]
    counts = [int(x) for x in exact]
    tie_break = rng.random(len(exact))
    by_remainder = sorted(range(len(exact)), key=lambda i: (counts[i] - exact[i], tie_break[i]))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    for i, count in enumerate(counts):
        if count == 0:
            counts[i] = 1
            counts[counts.index(max(counts))] -= 1
    return counts

"""How a candidate int8 model file is judged against fp32: by the budget (a labelled split's
drop) and by the float fallback's ranking (distance on unlabelled items)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

# A candidate file -> (accuracy drop in points against fp32, its scores). Lower is better.
Validator = Callable[[Path], tuple[float, dict]]
# A candidate file -> how far it is from fp32 (no labels needed). Lower is better.
Ranker = Callable[[Path], float]

"""Fine-tuning with transfer learning: feature extraction, full, progressive unfreezing."""

from edgeft.train.finetune import RunResult, finetune
from edgeft.train.recipe import STRATEGIES, Recipe

__all__ = ["STRATEGIES", "Recipe", "RunResult", "finetune"]

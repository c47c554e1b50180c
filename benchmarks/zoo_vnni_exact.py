"""The zoo MobileNetV2's OpenVINO int8 with 8-bit weights (a VNNI target's scheme), computed
exactly on a CPU without VNNI: does the 7-bit weights' cost explain the agreement shortfall?

    .venv/bin/python benchmarks/zoo_vnni_exact.py --zoo-out /tmp/zoo-agreement

Reads the fp32 bundle and calibration folders ``zoo_agreement.py`` wrote to --zoo-out, quantizes
with the VNNI scheme (NNCF's default: only the first layer narrowed), and scores top-1 agreement
with fp32 on the same 836 views through OpenVINO's int8 kernels and exactly: with the CPU
plugin's low-precision transformations off (``LP_TRANSFORMS_MODE=NO``) every FakeQuantize is
evaluated in float, which is what a VNNI CPU's exact int32 sums give. The shipped (host scheme)
int8 model is scored both ways too. Writes benchmarks/results/zoo_vnni_exact.{json,md}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import openvino as ov
from rich.console import Console
from side_by_side import write_table
from zoo_agreement import (
    CALIBRATION,
    RESULTS,
    agreement_cell,
    agreement_score,
    evaluation_views,
    int8_folder,
)

from edgeft.bundle import Bundle
from edgeft.quantize import QuantizationScheme, QuantizeConfig, quantize_bundle
from edgeft.runtime.encoders import encoder_for
from edgeft.targets import this_host

EXACT = {"LP_TRANSFORMS_MODE": "NO"}  # FakeQuantize in float: exact int8 arithmetic


def top1(xml: Path, images: np.ndarray, config: dict[str, str]) -> np.ndarray:
    compiled = ov.Core().compile_model(str(xml), "CPU", config)
    return np.concatenate([compiled(images[i : i + 1])[0] for i in range(len(images))]).argmax(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--zoo-out", type=Path, required=True)
    args = parser.parse_args()
    console = Console()
    fp32 = Bundle.load(args.zoo_out / "fp32")
    evaluation = evaluation_views()
    images = encoder_for(fp32).encode(evaluation)["input"]
    reference = top1(fp32.root / "openvino" / "model.xml", images, {})
    rows: dict[str, dict[str, dict]] = {}
    for index, calibration_name in enumerate(CALIBRATION):
        folder = args.zoo_out / f"calibration-{index}"
        vnni = quantize_bundle(
            fp32.root,
            int8_folder(folder, "vnni"),
            QuantizeConfig(
                engines=("openvino",),
                calibration=str(folder),
                method="minmax",
                max_accuracy_drop=100.0,
                scheme=QuantizationScheme(),
            ),
            overwrite=True,
            console=console,
        )
        shipped = Bundle.load(int8_folder(folder, "minmax"))
        for scheme, bundle in (("host scheme (shipped)", shipped), ("VNNI scheme", vnni)):
            xml = bundle.path_of(bundle.manifest.model("openvino", "int8"))
            rows[f"OpenVINO int8, {scheme}, calibrated on {calibration_name}"] = {
                way: agreement_score(top1(xml, images, config) == reference)
                for way, config in (("int8 kernels", {}), ("exact", EXACT))
            }
    host = this_host()
    result = {
        "command": f"python benchmarks/zoo_vnni_exact.py --zoo-out {args.zoo_out}",
        "host": host.cpu_model,
        "views": len(evaluation),
        "models": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "zoo_vnni_exact.json").write_text(json.dumps(result, indent=2))
    write_table(
        {name: tuple(agreement_cell(score) for score in r.values()) for name, r in rows.items()},
        (
            "model",
            "agreement through this CPU's int8 kernels (95% interval, photos resampled)",
            "agreement computed exactly (95% interval)",
        ),
        f"zoo MobileNetV2, int8 vs fp32 top-1 on {len(evaluation)} real views, {host.cpu_model}",
        RESULTS / "zoo_vnni_exact.md",
        f"Command: `{result['command']}`",
        console,
    )


if __name__ == "__main__":
    main()

"""How fragile are the zoo MobileNetV2's fp32 answers on the evaluation views? The floor under
any int8 model's agreement: the same fp32 graph with only its weights rounded, everything else
in float.

    .venv/bin/python benchmarks/zoo_noise_floor.py --zoo-out /tmp/zoo-agreement

Reads the fp32 bundle ``zoo_agreement.py`` wrote to --zoo-out and scores, on the same 836 views
and in ONNX Runtime, fp32 against copies whose convolution and classifier weights are stored in
fp16 or rounded per output channel (symmetric, as int8 weights are) to 12 down to 7 bits;
activations and biases stay fp32, so no calibration or int8 kernel is involved. Also counts the
views where fp32's two most likely classes are close. Writes
benchmarks/results/zoo_noise_floor.{json,md}.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from rich.console import Console
from side_by_side import write_table
from zoo_agreement import RESULTS, agreement_cell, agreement_score, evaluation_views

from edgeft.bundle import Bundle
from edgeft.runtime.encoders import encoder_for
from edgeft.runtime.predictor import softmax
from edgeft.targets import this_host

MARGINS = (0.01, 0.02, 0.05, 0.1)


def probabilities(model: onnx.ModelProto, images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return softmax(
        np.concatenate(
            [session.run(None, {name: images[i : i + 16]})[0] for i in range(0, len(images), 16)]
        )
    )


def per_channel_rounding(bits: int) -> Callable[[np.ndarray], np.ndarray]:
    """Symmetric rounding per output channel (axis 0) to ``bits``, as int8 weights are stored."""
    levels = 2 ** (bits - 1) - 1

    def rounded(weight: np.ndarray) -> np.ndarray:
        peak = np.abs(weight).reshape(len(weight), -1).max(1)
        scale = np.maximum(peak, 1e-12).reshape(-1, *[1] * (weight.ndim - 1)) / levels
        return np.round(weight / scale) * scale

    return rounded


def with_weights(
    model: onnx.ModelProto, change: Callable[[np.ndarray], np.ndarray]
) -> onnx.ModelProto:
    """A copy of ``model`` whose weight tensors (2 or more axes) went through ``change``."""
    changed = onnx.ModelProto()
    changed.CopyFrom(model)
    for tensor in changed.graph.initializer:
        weight = numpy_helper.to_array(tensor)
        if weight.dtype == np.float32 and weight.ndim >= 2:
            tensor.CopyFrom(numpy_helper.from_array(change(weight).astype(np.float32), tensor.name))
    return changed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--zoo-out", type=Path, required=True)
    args = parser.parse_args()
    fp32 = Bundle.load(args.zoo_out / "fp32")
    evaluation = evaluation_views()
    images = next(iter(encoder_for(fp32).encode(evaluation).values()))
    model = onnx.load(str(fp32.root / "model.onnx"))
    reference = probabilities(model, images)
    top_two = np.sort(reference, 1)[:, -2:]
    margin = top_two[:, 1] - top_two[:, 0]
    perturbations = {"fp16 weights": lambda w: w.astype(np.float16)} | {
        f"weights rounded to {bits} bits per channel": per_channel_rounding(bits)
        for bits in (12, 10, 9, 8, 7)
    }
    rows = {}
    for name, change in perturbations.items():
        perturbed = probabilities(with_weights(model, change), images)
        same = perturbed.argmax(1) == reference.argmax(1)
        rows[name] = {
            **agreement_score(same),
            "flips": int((~same).sum()),
            "flips_where_margin_below_0.05": int((~same & (margin < 0.05)).sum()),
            "probability_l1": float(np.abs(perturbed - reference).sum(1).mean()),
        }
    host = this_host()
    result = {
        "command": f"python benchmarks/zoo_noise_floor.py --zoo-out {args.zoo_out}",
        "host": host.cpu_model,
        "views": len(evaluation),
        "views_with_fp32_top2_margin_below": {str(m): int((margin < m).sum()) for m in MARGINS},
        "models": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "zoo_noise_floor.json").write_text(json.dumps(result, indent=2))
    near_ties = ", ".join(
        f"{count} below {m}" for m, count in result["views_with_fp32_top2_margin_below"].items()
    )
    write_table(
        {
            name: (
                agreement_cell(r),
                f"{r['flips']} / {len(evaluation)}",
                str(r["flips_where_margin_below_0.05"]),
                f"{r['probability_l1']:.3f}",
            )
            for name, r in rows.items()
        },
        (
            "fp32 with",
            "agreement with fp32 (95% interval, photos resampled)",
            "flips",
            "of them where fp32's top-2 margin < 0.05",
            "probability L1 to fp32",
        ),
        f"zoo MobileNetV2, weights perturbed, top-1 against fp32 on {len(evaluation)} real views",
        RESULTS / "zoo_noise_floor.md",
        f"Command: `{result['command']}`\n\nViews where fp32's two most likely classes are within "
        f"a probability margin of: {near_ties} (of {len(evaluation)}).",
        Console(),
    )


if __name__ == "__main__":
    main()

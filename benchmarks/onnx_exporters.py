"""torch's two ONNX exporters side by side on the zoo's models: the TorchScript-based one edgeft
uses (legacy, deprecated since torch 2.9) and the ``torch.export``-based one (``dynamo=True``).

    .venv/bin/python benchmarks/onnx_exporters.py [--models mobilenet_v2,efficientnet_lite0,minilm]

For each model and exporter: export time, what lands on disk (one file or a side ``.onnx.data``),
size, node count and op types, whether the batch (and sequence) axes stay dynamic, the largest
deviation from torch relative to the logits' scale, whether ONNX Runtime's static QDQ quantizer
and OpenVINO read the graph, and ONNX Runtime fp32 p50 at batch 1 (interleaved rounds). Writes
benchmarks/results/onnx_exporters.{json,md}; docs/onnx-exporter.md reads them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import openvino as ov
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static
from rich.console import Console

from edgeft.bench.latency import measure_latency
from edgeft.export.model_inputs import model_inputs
from edgeft.export.onnx_export import OPSET
from edgeft.runtime.engines import open_session
from edgeft.targets import host_fingerprint
from edgeft.zoo import get_model

RESULTS = Path(__file__).parent / "results"


class _Reader(CalibrationDataReader):
    def __init__(self, batches: list[dict[str, np.ndarray]]) -> None:
        self.batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def _export(
    exporter: str,
    model: torch.nn.Module,
    example: dict[str, torch.Tensor],
    axes: dict[str, dict[int, str]],
    path: Path,
) -> float:
    """Seconds to write ``path`` with ``exporter``; the dynamo exporter takes its dynamic axes
    as ``dynamic_shapes`` (a torch.export.Dim per axis) and writes at its own default opset."""
    start = time.perf_counter()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(
                model, tuple(example.values()), str(path), input_names=list(example),
                output_names=["logits"], dynamic_axes=axes, opset_version=OPSET, dynamo=False,
            )  # fmt: skip
        else:
            dims = {name: torch.export.Dim(name) for a in axes.values() for name in a.values()}
            # by position: keyed by name, they must be forward()'s argument names
            shapes = tuple({i: dims[n] for i, n in axes[k].items()} for k in example)
            program = torch.onnx.export(
                model, tuple(example.values()), input_names=list(example),
                output_names=["logits"], dynamic_shapes=shapes, dynamo=True,
            )  # fmt: skip
            program.save(str(path))
    return time.perf_counter() - start


def _dynamic(graph: onnx.GraphProto) -> dict[str, list[str | int]]:
    return {
        i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
        for i in graph.input
    }


def _row(name: str, exporter: str, folder: Path, rounds: int) -> dict:
    entry = get_model(name)
    torch.manual_seed(0)
    model = entry.create(num_classes=2).eval()
    inputs = model_inputs(entry.preprocessing, model)
    path = folder / f"{name}-{exporter}.onnx"
    seconds = _export(exporter, model, inputs.example, inputs.dynamic_axes, path)
    files = sorted(p.name for p in folder.iterdir() if p.name.startswith(path.name))
    size = sum((folder / f).stat().st_size for f in files)
    proto = onnx.load(str(path))
    with torch.no_grad():
        expected = model(*inputs.example.values())
    expected = (expected if isinstance(expected, torch.Tensor) else expected[0]).numpy()
    session = open_session("onnxruntime", path)
    feeds = {n: t.numpy() for n, t in inputs.example.items()}
    actual = session.run(feeds)[0]
    deviation = float(np.abs(actual - expected).max() / np.abs(expected).max())
    # another batch size (and length) than the example's: the axes really are dynamic
    other = {n: np.concatenate([a, a, a])[:, : a.shape[1] // 2 or None] for n, a in feeds.items()}
    if entry.preprocessing.__class__.__name__ == "ImagePreprocessing":
        other = {n: np.concatenate([a, a, a]) for n, a in feeds.items()}
    try:
        reshaped = session.run(other)[0].shape[0] == 6
    except Exception:  # any failure means the axes are fixed
        reshaped = False
    try:
        quantize_static(
            str(path), str(folder / f"{name}-{exporter}-int8.onnx"), _Reader([feeds]),
            quant_format=QuantFormat.QDQ, per_channel=True,
        )  # fmt: skip
        quantized = "yes"
    except Exception as exc:  # recorded, not raised: this is the finding
        quantized = f"no: {type(exc).__name__}: {str(exc)[:120]}"
    try:
        ov.Core().read_model(str(path))
        openvino = "yes"
    except RuntimeError as exc:
        openvino = f"no: {str(exc)[:120]}"
    one = {n: a[:1] for n, a in feeds.items()}
    p50 = [measure_latency(session, one, 0.5, warmup=5).p50_ms for _ in range(rounds)]
    return {
        "model": name,
        "exporter": exporter,
        "export_s": round(seconds, 2),
        "files": files,
        "size_mb": round(size / 1e6, 2),
        "opset": next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
        "nodes": len(proto.graph.node),
        "op_types": dict(Counter(n.op_type for n in proto.graph.node).most_common()),
        "inputs": _dynamic(proto.graph),
        "other_batch_runs": reshaped,
        "max_relative_deviation": deviation,
        "onnxruntime_static_int8": quantized,
        "openvino_reads": openvino,
        "ort_fp32_p50_ms": round(float(np.median(p50)), 3),
        "ort_fp32_p50_rounds_ms": [round(p, 3) for p in p50],
    }


def _table(rows: list[dict]) -> str:
    head = (
        "| model | exporter | export s | files | MB | opset | nodes | other batch runs | "
        "max rel. deviation | ORT static int8 | OpenVINO reads | ORT fp32 p50 ms |\n"
        "|---|---|---:|---|---:|---:|---:|---|---:|---|---|---:|\n"
    )
    return head + "".join(
        f"| {r['model']} | {r['exporter']} | {r['export_s']} | {', '.join(r['files'])} | "
        f"{r['size_mb']} | {r['opset']} | {r['nodes']} | {r['other_batch_runs']} | "
        f"{r['max_relative_deviation']:.1e} | {r['onnxruntime_static_int8']} | "
        f"{r['openvino_reads']} | {r['ort_fp32_p50_ms']} |\n"
        for r in rows
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="mobilenet_v2,efficientnet_lite0,minilm")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    console = Console(stderr=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            for exporter in ("torchscript", "dynamo"):
                folder = Path(tmp) / f"{name}-{exporter}"
                folder.mkdir()
                console.print(f"{name}: {exporter} exporter")
                rows.append(_row(name, exporter, folder, args.rounds))
    host = host_fingerprint()
    record = {"host": host, "torch": torch.__version__, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "onnx_exporters.json").write_text(json.dumps(record, indent=1) + "\n")
    command = "`.venv/bin/python benchmarks/onnx_exporters.py`"
    text = (
        f"# torch's ONNX exporters side by side\n\n{command}, torch {torch.__version__}, "
        f"host: {host['cpu']} ({', '.join(host['flags'])}).\n\n{_table(rows)}"
    )
    (RESULTS / "onnx_exporters.md").write_text(text)
    console.print(text)


if __name__ == "__main__":
    main()

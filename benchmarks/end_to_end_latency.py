"""Image bytes in, label out, against the bare engine call, at batch 1, on both engines.

    .venv/bin/python benchmarks/end_to_end_latency.py --bundle BUNDLE --images DIR [--count 32]

For every model the runtime would run on this host, four calls are timed in interleaved rounds in
this one process (median of round medians, with the lowest and highest round median):

- the bare engine call (``InferenceSession.run`` / OpenVINO ``InferRequest.infer``, opened the
  way the engine's documentation shows) on already-encoded inputs;
- ``Predictor.probabilities`` on the same encoded inputs (the runtime's own overhead);
- ``Predictor.predict`` on PNG bytes and on JPEG bytes (quality 90, the source's colour mode),
  decoding and preprocessing included.

Each call takes the next of ``--count`` images from DIR (PNG files, searched recursively), so no
one file's compression decides the figure. A second table splits the preprocessing into its
steps. Writes benchmarks/results/end_to_end_latency.{json,md}.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from side_by_side import write_table

from edgeft.bundle import Bundle
from edgeft.runtime import Predictor
from edgeft.runtime.images import decode_pixels
from edgeft.runtime.model_choice import int8_mismatch
from edgeft.runtime.preprocess import ImagePreprocessor
from edgeft.targets.host import host_fingerprint

RESULTS = Path(__file__).parent / "results"
console = Console()


def bare_engine_call(predictor: Predictor) -> Callable[[dict[str, np.ndarray]], object]:
    """The engine's own API, opened the way its documentation shows, with the same settings."""
    path = str(predictor.bundle.path_of(predictor.model))
    if predictor.model.engine == "onnxruntime":
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        return lambda inputs: session.run(None, inputs)
    import openvino as ov

    config = {"PERFORMANCE_HINT": "LATENCY"}
    if predictor.model.precision == "fp32":
        config["INFERENCE_PRECISION_HINT"] = "f32"
    request = ov.Core().compile_model(path, "CPU", config).create_infer_request()
    return lambda inputs: request.infer(inputs)


def as_jpeg(png: bytes) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def round_medians(calls: dict[str, Callable[[], object]], rounds: int, per_round: int) -> dict:
    """Per call: the median of each round's ``per_round`` timings, rounds interleaved."""
    for call in calls.values():  # warm-up: lazy allocations, caches
        for _ in range(20):
            call()
    medians: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            times = []
            for _ in range(per_round):
                started = time.perf_counter()
                call()
                times.append(time.perf_counter() - started)
            medians[name].append(float(np.median(times) * 1000))
    return medians


def cycling(items: Sequence, use: Callable) -> Callable[[], object]:
    """A call that applies ``use`` to the next item each time."""
    source = itertools.cycle(items)
    return lambda: use(next(source))


def end_to_end(
    bundle: Bundle, pngs: list[bytes], jpegs: list[bytes], rounds: int, per_round: int
) -> list[dict]:
    rows = []
    for entry in bundle.manifest.models:
        if entry.precision == "int8" and int8_mismatch(entry):
            continue  # a candidate, or a scheme this host's kernels would not compute faithfully
        predictor = Predictor(bundle, engine=entry.engine, precision=entry.precision)
        if predictor.model != entry:
            continue  # another int8 model of this engine fits this host better
        encoded = [predictor.encoder.encode([png]) for png in pngs]
        bare = bare_engine_call(predictor)
        calls = {
            "bare engine": cycling(encoded, bare),
            "runtime, encoded input": cycling(encoded, predictor.probabilities),
            "PNG bytes -> label": cycling(pngs, lambda png, p=predictor: p.predict([png])),
            "JPEG bytes -> label": cycling(jpegs, lambda jpeg, p=predictor: p.predict([jpeg])),
        }
        medians = round_medians(calls, rounds, per_round)
        ms = {name: float(np.median(values)) for name, values in medians.items()}
        rows.append(
            {
                "engine": entry.engine,
                "precision": entry.precision,
                "ms": ms,
                "round_ms": medians,
                "png_ratio": ms["PNG bytes -> label"] / ms["bare engine"],
                "jpeg_ratio": ms["JPEG bytes -> label"] / ms["bare engine"],
            }
        )
        console.print(f"{entry.engine} {entry.precision}: {ms}")
    return rows


def preprocessing_steps(
    bundle: Bundle, pngs: list[bytes], jpegs: list[bytes], rounds: int, per_round: int
) -> dict:
    """Decode (PNG, JPEG), then resize + crop + normalise from the decoded image."""
    preprocess = ImagePreprocessor(bundle.manifest.preprocessing)  # type: ignore[arg-type]
    decoded = [decode_pixels(png) for png in pngs]
    calls = {
        "decode PNG": cycling(pngs, decode_pixels),
        "decode JPEG": cycling(jpegs, decode_pixels),
        "resize, crop, normalise": cycling(decoded, preprocess),
    }
    return round_medians(calls, rounds, per_round)


def _cell(values: list[float]) -> str:
    return f"{np.median(values):.2f} [{min(values):.2f}, {max(values):.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True, help="A folder of PNG images.")
    parser.add_argument("--count", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=100, help="Timed calls per round.")
    args = parser.parse_args()
    bundle = Bundle.load(args.bundle)
    files = sorted(args.images.rglob("*.png"))[: args.count]
    if not files:
        raise SystemExit(f"no PNG images under {args.images}")
    pngs = [f.read_bytes() for f in files]
    jpegs = [as_jpeg(png) for png in pngs]
    first = Image.open(files[0])
    host = host_fingerprint()
    results = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "host": host,
        "bundle": str(args.bundle),
        "images": {"count": len(pngs), "first": files[0].name, "size": first.size,
                   "mode": first.mode, "mean_png_bytes": float(np.mean([len(p) for p in pngs]))},
        "end_to_end": end_to_end(bundle, pngs, jpegs, args.rounds, args.calls),
        "steps": preprocessing_steps(bundle, pngs, jpegs, args.rounds, args.calls),
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "end_to_end_latency.json").write_text(json.dumps(results, indent=2) + "\n")
    images = results["images"]
    preamble = (
        f"# Image bytes -> label at batch 1\n\n`{results['command']}` on {host['cpu']} "
        f"({host['cores']} cores; {', '.join(host['flags']) or 'no AVX'}), bundle "
        f"`{args.bundle}`: {images['count']} {images['size'][0]}x{images['size'][1]} "
        f"{images['mode']} PNG images ({images['mean_png_bytes'] / 1000:.1f} kB on average), "
        "each call the next one; JPEG: the same images at quality 90. Milliseconds, median of "
        f"{args.rounds} interleaved round medians of {args.calls} calls [lowest, highest round]."
    )
    names = list(results["end_to_end"][0]["ms"])
    rows = {
        f"{row['engine']} {row['precision']}": [
            *(_cell(row["round_ms"][name]) for name in names),
            f"{row['png_ratio']:.2f}x",
            f"{row['jpeg_ratio']:.2f}x",
        ]
        for row in results["end_to_end"]
    }
    columns = ["model", *names, "PNG / bare", "JPEG / bare"]
    write_table(
        rows, columns, "bytes -> label", RESULTS / "end_to_end_latency.md", preamble, console
    )
    steps = "\n".join(f"| {name} | {_cell(values)} |" for name, values in results["steps"].items())
    with (RESULTS / "end_to_end_latency.md").open("a") as out:
        out.write(f"\n## Preprocessing, step by step\n\n| step | ms |\n|---|---:|\n{steps}\n")
    console.print(f"wrote {RESULTS / 'end_to_end_latency.md'}")


if __name__ == "__main__":
    main()

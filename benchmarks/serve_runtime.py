"""The server under concurrent clients, and the size of a runtime-only install (the runtime's
own latency beside the bare engine call is ``end_to_end_latency.py``'s).

    .venv/bin/python benchmarks/serve_runtime.py --bundle BUNDLE [--clients 16 --requests 200]

1. ``edgeft serve`` in a child process: one client back to back (server overhead per request),
   then ``--clients`` x ``--requests`` v2 binary requests (throughput, errors, batch sizes from
   /metrics), per engine at int8.
2. ``pip install`` of edgeft with no extras (and with ``[serve]``) into fresh venvs: size on disk.

Writes benchmarks/results/serve_runtime.{json,md}.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image
from rich.console import Console

from edgeft.bench.server_load import run_load
from edgeft.bench.server_process import ServerProcess
from edgeft.bundle import Bundle
from edgeft.runtime import Predictor
from edgeft.serve.protocol import encode_infer_request
from edgeft.targets import this_host

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]
console = Console()


def _histogram(metrics: str, name: str) -> tuple[float, float]:
    count = float(re.search(rf"^{name}_count (\S+)$", metrics, re.M).group(1))  # type: ignore[union-attr]
    total = float(re.search(rf"^{name}_sum (\S+)$", metrics, re.M).group(1))  # type: ignore[union-attr]
    return count, total


def server_load(bundle: Bundle, image: bytes, clients: int, requests: int) -> list[dict]:
    rows = []
    for engine in sorted({m.engine for m in bundle.manifest.models}):
        predictor = Predictor(bundle, engine=engine, precision="auto")
        body, headers = encode_infer_request(predictor.encoder.encode([image]))
        with ServerProcess(bundle.root, ["--engine", engine, "--model-name", "m"]) as server:
            infer = f"{server.url}/v2/models/m/infer"
            run_load(infer, body, headers, clients=1, requests_per_client=50)  # warm-up
            single = run_load(infer, body, headers, clients=1, requests_per_client=300)
            upload = run_load(
                f"{server.url}/v1/predict", image, {"Content-Type": "image/png"}, 1, 300
            )
            before = _histogram(server.request("GET", "/metrics")[1].decode(), "edgeft_batch_size")
            loaded = run_load(infer, body, headers, clients=clients, requests_per_client=requests)
            after = _histogram(server.request("GET", "/metrics")[1].decode(), "edgeft_batch_size")
        batches, items = after[0] - before[0], after[1] - before[1]
        rows.append(
            {
                "engine": engine,
                "precision": predictor.model.precision,
                "1 client v2 p50 ms": single.latency.p50_ms,
                "1 client v2 p99 ms": single.latency.p99_ms,
                "1 client /v1/predict PNG p50 ms": upload.latency.p50_ms,
                f"{clients} clients requests": loaded.requests,
                f"{clients} clients errors": loaded.errors + single.errors + upload.errors,
                f"{clients} clients req/s": loaded.requests_per_s,
                f"{clients} clients p50 ms": loaded.latency.p50_ms,
                f"{clients} clients p99 ms": loaded.latency.p99_ms,
                "engine calls": int(batches),
                "mean batch": items / batches,
            }
        )
        console.print(rows[-1])
    return rows


def install_sizes() -> list[dict]:
    rows = []
    for extras in ("", "[serve]"):
        with tempfile.TemporaryDirectory() as tmp:
            venv = Path(tmp) / "venv"
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
            subprocess.run(
                [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                 "install", "--quiet", f"{REPO}{extras}"],
                check=True, capture_output=True,
            )  # fmt: skip
            site = next((venv / "lib").glob("python*/site-packages"))
            size = sum(f.stat().st_size for f in site.rglob("*") if f.is_file())
            torch = (site / "torch").exists()
            rows.append({"install": f"edgeft{extras}", "MB": size / 1e6, "has torch": torch})
        console.print(rows[-1])
    return rows


def _table(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--image", type=Path, help="An input image (default: skimage's cat).")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    bundle = Bundle.load(args.bundle)
    if args.image:
        image = args.image.read_bytes()
    else:
        from skimage import data

        buffer = io.BytesIO()
        Image.fromarray(data.chelsea()).save(buffer, format="PNG")
        image = buffer.getvalue()
    host = this_host()
    results = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "host": {"cpu": host.cpu_model, "cores": host.cores},
        "bundle": str(args.bundle),
        "server": server_load(bundle, image, args.clients, args.requests),
        "install": install_sizes(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serve_runtime.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = [
        "# Edge runtime and server",
        "",
        f"`{results['command']}` on {host.cpu_model} ({host.cores} cores), bundle `{args.bundle}`.",
        "",
        f"## Server on loopback (`edgeft serve`, {args.clients} clients x {args.requests} requests)",
        "",
        _table(results["server"]),
        "",
        "## Runtime-only install (fresh venv, site-packages)",
        "",
        _table(results["install"]),
        "",
    ]
    (RESULTS / "serve_runtime.md").write_text("\n".join(markdown))
    console.print(f"wrote {RESULTS / 'serve_runtime.md'}")


if __name__ == "__main__":
    main()

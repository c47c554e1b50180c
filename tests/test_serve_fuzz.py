"""Schema-driven fuzzing of a real `edgeft serve` process: schemathesis reads the server's own
OpenAPI document and sends every operation generated requests, valid and deliberately invalid
(mode "all"), through its coverage and fuzzing phases; any 5xx fails the run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from edgeft.bench.server_process import ServerProcess
from edgeft.bundle import Bundle

MODEL = "fuzzed"


def test_no_generated_request_gets_a_server_error(zoo_bundle: Bundle, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"  # requests name the served model and version;
    # load and unload change what is served (their own tests cover them)
    config.write_text(
        f'[parameters]\n"path.name" = "{MODEL}"\n"path.version" = "1"\n\n'
        '[[operations]]\ninclude-path-regex = "^/v2/repository/models/"\nenabled = false\n'
    )
    options = ["--model-name", MODEL, "--engine", "onnxruntime", "--max-request-mb", "4"]
    with ServerProcess(zoo_bundle.root, options) as server:
        command = [
            str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config),
            "run", f"{server.url}/openapi.json", "--checks", "not_a_server_error",
            "--mode", "all", "--max-examples", "50", "--seed", "1",
            "--phases", "coverage,fuzzing", "--request-timeout", "60", "--no-color",
            "--generation-database", "none",
        ]  # fmt: skip
        run = subprocess.run(command, capture_output=True, text=True, timeout=600)
        metrics = server.request("GET", "/metrics")[1].decode()
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert counts and int(counts.group(1)) >= 500, run.stdout[-2000:]  # it really sent requests
    # (its readiness probe answered 503 while the model warmed up: that is what it is for)
    server_errors = re.findall(r'code="5\d\d",route="(?!/v2/health/ready")[^"]*"', metrics)
    assert not server_errors, server_errors

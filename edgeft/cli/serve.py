"""Serving on the box: the KServe v2 server, and reading a running server's shadow report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgeft.cli import render
from edgeft.cli.app import (
    AllowMismatchFlag,
    EngineOption,
    JsonFlag,
    PrecisionOption,
    app,
    console,
)


@app.command()
def serve(
    ctx: typer.Context,
    bundle: Annotated[Path, typer.Argument(help="A bundle folder, or a repository folder.")],
    host: Annotated[str, typer.Option(help="Address to bind; other than loopback needs care.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    grpc_port: Annotated[
        int | None,
        typer.Option(help="Also speak v2 gRPC on this port (Triton's is 8001; needs grpcio)."),
    ] = None,
    canary: Annotated[
        list[str] | None,
        typer.Option(help="NAME@VERSION:PERCENT: that share of NAME's requests (repository only)."),
    ] = None,
    shadow: Annotated[
        list[str] | None,
        typer.Option(help="NAME@VERSION: run it on a copy of NAME's v2 requests and compare."),
    ] = None,
    engine: EngineOption = "auto",
    precision: PrecisionOption = "auto",
    allow_mismatch: AllowMismatchFlag = False,
    validate: Annotated[
        bool,
        typer.Option(
            "--validate", help="Run `edgeft validate` on the model first; not ready if it fails."
        ),
    ] = False,
    model_name: Annotated[
        str | None, typer.Option(help="Name in /v2/models/NAME (default: the bundle folder's).")
    ] = None,
    max_batch: Annotated[int, typer.Option(help="Largest dynamic batch.", min=1)] = 8,
    max_wait_ms: Annotated[
        float, typer.Option(help="How long a lone request waits for company.", min=0)
    ] = 0.0,
    max_request_mb: Annotated[float, typer.Option(help="Largest request body.", min=0.001)] = 16,
    max_queue: Annotated[
        int, typer.Option(help="Items that may wait for the engine; past it, 503 at once.", min=1)
    ] = 64,
    queue_timeout_s: Annotated[
        float, typer.Option(help="Longest wait in the queue before a 503.", min=0.001)
    ] = 10.0,
    max_connections: Annotated[
        int, typer.Option(help="Open connections at once; past it, 503.", min=1)
    ] = 64,
    body_timeout_s: Annotated[
        float, typer.Option(help="Longest time a request body may take to arrive (408).", min=0.1)
    ] = 30.0,
    threads: Annotated[int | None, typer.Option(help="Engine threads (default: all).")] = None,
    target: Annotated[
        str | None, typer.Option(help="Engine settings from a target profile this host matches.")
    ] = None,
    token_env: Annotated[
        str | None,
        typer.Option(help="Name of an environment variable holding a bearer token to require."),
    ] = None,
    calibrated: Annotated[
        bool,
        typer.Option("--calibrated", help="Answer with temperature-scaled probabilities."),
    ] = False,
    log: Annotated[
        Path | None,
        typer.Option(help="Prediction log (SQLite): ids in responses, /v1/feedback, drift."),
    ] = None,
    log_max_rows: Annotated[
        int, typer.Option(help="Rows kept; the oldest rotate out.", min=100)
    ] = 1_000_000,
    log_max_mb: Annotated[float, typer.Option(help="Log database size cap.", min=1)] = 2048,
    keep_below: Annotated[
        float, typer.Option(help="Keep every input whose confidence is under this.", min=0, max=1)
    ] = 0.7,
    keep_share: Annotated[
        float, typer.Option(help="Share of the other inputs kept as a sample.", min=0, max=1)
    ] = 0.02,
    keep_max_mb: Annotated[
        float, typer.Option(help="Disk cap for kept inputs; past it none are kept.", min=0)
    ] = 1024,
    monitor_window: Annotated[
        int, typer.Option(help="Predictions per window the server monitors.", min=10)
    ] = 500,
    monitor_interval_s: Annotated[
        float, typer.Option(help="How often the server re-analyses its latest window.", min=0.1)
    ] = 60.0,
) -> None:
    """Serve a bundle, or every model of a repository, over HTTP: KServe v2 (/v2/...), /v1
    uploads, /metrics, a status page at /. A repository's models follow their production
    aliases (hot swap). With --log, every prediction is logged (its id comes back in the
    response), operators post labels to /v1/feedback, and drift figures appear in /metrics.

    Example: edgeft serve edgeft-demo/bundle --log predictions.sqlite"""
    from edgeft.serve.launch import ServeOptions, launch

    options = {k: v for k, v in ctx.params.items() if k != "bundle"}
    launch(
        ServeOptions(source=bundle, **options | {"canary": canary or (), "shadow": shadow or ()}),
        announce=lambda line: console.print(line, highlight=False),
        on_choice=render.model_choice,
    )


@app.command("shadow")
def shadow_report(
    model: Annotated[str, typer.Argument(help="The model whose shadow to compare.")],
    url: Annotated[str, typer.Option(help="The running server.")] = "http://127.0.0.1:8000",
    token_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the server's bearer token.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Production against its shadow version on the same requests: agreement, the classes the
    shadow would change, its latency. Example: edgeft shadow elpv --url http://box:8000"""
    from edgeft.serve.shadow_client import fetch_shadow_report

    report = fetch_shadow_report(url, model, token_env)
    if as_json:
        print(json.dumps(report.raw, indent=2))
    else:
        render.shadow(console, model, report)

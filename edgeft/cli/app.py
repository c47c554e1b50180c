"""The typer application every command module registers on, the console it prints to, the
options several commands share, and ``main``: the one place errors become an ``error:`` line."""

from __future__ import annotations

import sqlite3
import sys
from typing import Annotated

import typer
from rich.console import Console

from edgeft.errors import EdgeftError

app = typer.Typer(
    help="Fine-tune, compress, benchmark and run pretrained models on edge boxes.\n\n"
    "Example: edgeft finetune --data elpv --out runs/elpv && edgeft export runs/elpv --out bundle",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
repo_app = typer.Typer(
    help="A model repository: numbered bundle versions per model, aliases, rollback.",
    no_args_is_help=True,
)
app.add_typer(repo_app, name="repo")
DEBUG = "--debug"


@app.callback()
def _global_options(
    debug: Annotated[
        bool, typer.Option(DEBUG, help="Show the traceback of an error, not just its line.")
    ] = False,
) -> None:
    """Options for every command (read by ``main`` before the command runs)."""


# Piped output (CI logs, files) gets room for the wide benchmark tables instead of 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
EngineOption = Annotated[str, typer.Option(help="auto, onnxruntime or openvino.")]
PrecisionOption = Annotated[
    str,
    typer.Option(help="auto (the int8 model that fits this host, else fp32), int8 or fp32."),
]
AllowMismatchFlag = Annotated[
    bool,
    typer.Option(
        "--allow-mismatch",
        help="With --precision int8: run an int8 model whose scheme does not fit this host.",
    ),
]


def main() -> None:
    """Console-script entry point: user errors (``EdgeftError``) and what the machine refused
    (``OSError``: a missing folder, a full or read-only disk; ``sqlite3.Error``: a damaged
    database) are one ``error:`` line and exit code 2, with a traceback only under --debug."""
    debug = DEBUG in sys.argv[1 : sys.argv.index("--") if "--" in sys.argv else None]
    try:
        app()
    except (EdgeftError, OSError, sqlite3.Error) as exc:
        if debug:
            raise
        Console(stderr=True, soft_wrap=True).print(
            f"[bold red]error:[/] {one_line(exc)}", highlight=False
        )
        sys.exit(2)


def one_line(exc: BaseException) -> str:
    """The error's message; a system or database error says what it is about too."""
    if isinstance(exc, EdgeftError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    kind = "database" if isinstance(exc, sqlite3.Error) else "system"
    return f"{kind} error: {exc}"

"""The ``edgeft`` command: a thin typer layer over the Python API.

One module per command group; each command parses its options, calls one API function and hands
the result to ``render``. ``app`` is the typer application, ``main`` the console script. The
modules are imported in the order ``edgeft --help`` lists their commands: the workflow's.
"""

# isort: skip_file
from edgeft.cli.app import app, main
from edgeft.cli import build, evaluate, serve, bench, repo, monitor

__all__ = ["app", "bench", "build", "evaluate", "main", "monitor", "repo", "serve"]

"""The layout's import rules, read from the source (every import, lazy and type-only ones too):
the box side never reaches into the build side, its packages import only downwards, and no
modules import each other in a circle. ``docs/architecture.md`` draws the same layers."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edgeft"
# Lower layers first: a box package may import its own layer's packages and those below.
BOX_LAYERS = (
    {"", "errors", "atomic", "engine_registry"},  # "": the package itself (its version)
    {"targets"},
    {"bundle"},
    {"runtime"},
    {"monitor", "repository"},
    {"serve"},
)
BOX = set().union(*BOX_LAYERS)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str, root: Path) -> bool:
    path = root.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path, root: Path) -> Iterator[str]:
    """The edgeft modules ``path`` imports; ``from package import submodule`` names the
    submodule, not the package it sits in."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == root.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != root.name:
                continue
            submodules = [f"{node.module}.{a.name}" for a in node.names]
            found = [m for m in submodules if is_module(m, root)]
            yield from found
            if len(found) < len(submodules):
                yield node.module


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    return {module_name(path, root): set(imports_of(path, root)) for path in root.rglob("*.py")}


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_of(package: str) -> int | None:
    return next((i for i, layer in enumerate(BOX_LAYERS) if package in layer), None)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Box modules importing the build side, or a box package above their own layer."""
    found = []
    for module, imported in sorted(graph.items()):
        own = layer_of(top(module))
        if own is None:
            continue
        for target in sorted(imported):
            other = layer_of(top(target))
            if other is None or other > own:
                found.append(f"{module} -> {target}")
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or round a loop (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph.get(module, ()):
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while not group or group[-1] != module:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_the_box_side_never_reaches_up() -> None:
    graph = import_graph()
    assert {top(m) for m in graph} >= BOX  # the layers name real modules
    assert upward_imports(graph) == []


def test_no_modules_import_each_other_in_a_circle() -> None:
    assert circles(import_graph()) == []


def test_the_checks_see_an_upward_import_and_a_circle(tmp_path: Path) -> None:
    """The rules above fail on what they guard against (a box module importing the build side,
    a lazy import back into a package that imports the importer)."""
    root = tmp_path / "edgeft"
    for folder in ("runtime", "data", "zoo"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "runtime" / "scoring.py").write_text(
        "def f():\n    from edgeft.data import load_dataset\n"
    )
    (root / "zoo" / "base.py").write_text("def g():\n    from edgeft.zoo.groups import h\n")
    (root / "zoo" / "groups.py").write_text("from edgeft.zoo.base import g\n")
    graph = import_graph(root)
    assert upward_imports(graph) == ["edgeft.runtime.scoring -> edgeft.data"]
    assert circles(graph) == [["edgeft.zoo.base", "edgeft.zoo.groups"]]


def test_the_architecture_page_lists_every_folder_on_its_side() -> None:
    """``docs/architecture.md``'s folder table is the code's: each package and top-level module
    listed once, "box" exactly where the layers above put it."""
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `edgeft/([\w.]+?)(?:\.py)?` \| (\w+) \|", doc, flags=re.MULTILINE)
    listed = {name: side for name, side in rows}
    assert len(listed) == len(rows), "a folder is listed twice"
    code = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()} | {
        p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"
    }
    assert set(listed) == code
    assert {name for name, side in listed.items() if side == "box"} == BOX - {""}
    assert set(listed.values()) == {"box", "build"}

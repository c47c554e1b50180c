"""``edgeft repo``: a box's model repository (versions, aliases, rollback) and its export to
Triton or OVMS."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from edgeft.cli import render
from edgeft.cli.app import JsonFlag, console, repo_app
from edgeft.repository import ModelRepository

RepoArgument = Annotated[Path, typer.Argument(help="A repository folder.")]
ModelArgument = Annotated[str, typer.Argument(help="A model name in the repository.")]
AliasOption = Annotated[str, typer.Option(help="The alias to move.")]


@repo_app.command("push")
def repo_push(
    bundle: Annotated[Path, typer.Argument(help="A bundle folder.")],
    repo: Annotated[Path, typer.Argument(help="A repository folder (created if missing).")],
    name: Annotated[
        str | None, typer.Option(help="Model name (default: the bundle's folder name).")
    ] = None,
    no_validate: Annotated[
        bool, typer.Option("--no-validate", help="Skip `edgeft validate` on this host.")
    ] = False,
) -> None:
    """Copy a bundle into the repository as the model's next version (hashes checked, validated
    on this host). Example: edgeft repo push bundles/elpv-int8 /srv/models --name elpv"""
    version = ModelRepository(repo, create=True).push(bundle, name, validate=not no_validate)
    console.print(f"{version.model} version {version.version} at {version.path}", highlight=False)


@repo_app.command("list")
def repo_list(repo: RepoArgument, as_json: JsonFlag = False) -> None:
    """Every model, its versions and the aliases pointing at them.
    Example: edgeft repo list /srv/models"""
    rows = ModelRepository(repo).listing()
    if as_json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        render.repository_versions(console, repo, rows)


@repo_app.command("promote")
def repo_promote(
    repo: RepoArgument,
    model: ModelArgument,
    version: Annotated[int, typer.Argument(help="The version to point the alias at.")],
    alias: AliasOption = "production",
) -> None:
    """Point an alias at a version; a server following the repository swaps to it.
    Example: edgeft repo promote /srv/models elpv 3"""
    before = ModelRepository(repo).promote(model, version, alias)
    console.print(f"{model} {alias}: {before or 'none'} -> {version}", highlight=False)


@repo_app.command("rollback")
def repo_rollback(
    repo: RepoArgument, model: ModelArgument, alias: AliasOption = "production"
) -> None:
    """Move an alias back to the version it pointed to before its last move.
    Example: edgeft repo rollback /srv/models elpv"""
    version = ModelRepository(repo).rollback(model, alias)
    console.print(f"{model} {alias}: back to {version}", highlight=False)


@repo_app.command("history")
def repo_history(repo: RepoArgument, model: ModelArgument, as_json: JsonFlag = False) -> None:
    """Every alias change of a model: when, who, from and to.
    Example: edgeft repo history /srv/models elpv"""
    changes = ModelRepository(repo).history(model)
    if as_json:
        print(json.dumps([asdict(c) for c in changes], indent=2))
    else:
        render.alias_history(console, model, changes)


@repo_app.command("rm")
def repo_rm(
    repo: RepoArgument,
    model: ModelArgument,
    version: Annotated[int, typer.Argument(help="The version to delete.")],
) -> None:
    """Delete a version no alias points to. Example: edgeft repo rm /srv/models elpv 1"""
    ModelRepository(repo).remove(model, version)
    console.print(f"{model} version {version} removed", highlight=False)


@repo_app.command("layout")
def repo_layout(
    repo: RepoArgument,
    format: Annotated[str, typer.Option("--format", help="triton or ovms.")],
    out: Annotated[Path, typer.Option(help="The folder to write.")],
    engine: Annotated[str, typer.Option(help="onnxruntime or openvino.")] = "onnxruntime",
    precision: Annotated[
        str, typer.Option(help="fp32, or int8 (the int8 model that fits this host).")
    ] = "fp32",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
) -> None:
    """Lay out every model's production version for Triton or OVMS, with a KServe manifest.
    Example: edgeft repo layout /srv/models --format triton --out triton-models"""
    from edgeft.repository.layouts import write_layout

    models = write_layout(ModelRepository(repo), format, out, engine, precision, overwrite)
    for model in models:
        console.print(f"{model.name} version {model.version}: {model.entry.label}", highlight=False)
    console.print(f"{format} repository in {out} (KServe: {out / 'inferenceservice.yaml'})")


# `repo export`, this command's earlier name, still works for scripts written against it.
repo_app.command("export", hidden=True)(repo_layout)

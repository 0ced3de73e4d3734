"""``selflearn artifacts``: list the versioned artifact sets, roll back to an earlier one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    pass
from selflearn.cli.app import ArtifactsOption, JsonOption, _print_json, err, out

artifacts_app = typer.Typer(help="Versioned artifact sets: list them, roll back to an earlier one.")


@artifacts_app.command("list")
def artifacts_list(artifacts: ArtifactsOption = None, as_json: JsonOption = False) -> None:
    """Every published artifact set, oldest first; the one in service is marked."""
    from dataclasses import asdict

    from selflearn.artifacts import ArtifactStore

    versions = ArtifactStore(artifacts).versions()
    if as_json:
        _print_json({"versions": [asdict(v) for v in versions]})
        return
    from rich.table import Table

    table = Table(title="artifact sets")
    for col in ("version", "created", "current", "meta"):
        table.add_column(col)
    for v in versions:
        table.add_row(v.version, v.created, "*" if v.current else "", ", ".join(f"{k}={x}" for k, x in v.meta.items()))
    out.print(table)


@artifacts_app.command("rollback")
def artifacts_rollback(
    version: Annotated[str | None, typer.Argument(help="Version to serve. Default: the one before current.")] = None,
    artifacts: ArtifactsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Put an earlier artifact set back in service (an atomic pointer switch)."""
    from selflearn.artifacts import ArtifactStore

    current = ArtifactStore(artifacts).rollback(version)
    if as_json:
        _print_json({"current": current})
        return
    err.print(f"now serving {current}")

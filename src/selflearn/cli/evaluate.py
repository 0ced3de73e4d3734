"""``selflearn eval SUITE``: one JSON object per suite run (the eval contract)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from selflearn.eval import harness as evaluate

if TYPE_CHECKING:
    pass
from selflearn.cli.app import JsonOption, PhrasingOption, RetrievalOption, SeedOption, out


def eval_(
    suite: Annotated[str, typer.Argument(help="Suite name; `selflearn eval list` shows them.")],
    seed: SeedOption = 0,
    quick: Annotated[bool, typer.Option("--quick", help="A smaller run that finishes in under 60 s.")] = False,
    home: Annotated[
        Path | None,
        typer.Option("--home", exists=True, dir_okay=False, help="Run on this home YAML, not the shipped ones."),
    ] = None,
    ha_config: Annotated[
        Path | None,
        typer.Option("--ha-config", help="peer-ha: import the home from this Home Assistant config directory."),
    ] = None,
    retrieval: RetrievalOption = True,
    phrasing: PhrasingOption = "templates",
    as_json: JsonOption = False,
) -> None:
    """Run an eval suite: exactly one JSON object on stdout with --json (the README's numbers come from here).
    --no-retrieval and --phrasing apply to the suites that simulate the daily loop (`loop`)."""
    if suite == "list":
        for name in evaluate.available():
            out.print(name)
        return
    if home is not None:
        from selflearn.home import load_home

        load_home(home)  # a bad or hostile home file: one line before any work, not a traceback mid-suite
    config = evaluate.EvalConfig(
        seed=seed, quick=quick, home=home, ha_config=ha_config, retrieval=retrieval, phrasing=phrasing
    )
    report = evaluate.run(suite, config)
    if as_json:
        print(report.to_json())
        return
    from rich.table import Table

    table = Table(title=f"eval {report.suite} (seed {report.seed}, n={report.n}, {report.seconds:.1f}s)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("baseline", justify="right")
    for name, value in report.metrics.items():
        base = report.baseline.get(name)
        table.add_row(name, f"{value:g}", "" if base is None else f"{base:g}")
    for name, value in report.baseline.items():
        if name not in report.metrics:
            table.add_row(name, "", f"{value:g}")
    out.print(table)

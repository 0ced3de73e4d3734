"""The ``selflearn`` command. Thin: parse options, call the library, print with Rich (stdout stays machine-clean
where ``--json`` is asked for; progress and tables for people go to stderr)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

import selflearn
from selflearn import evaluate

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

app = typer.Typer(
    name="selflearn",
    help="A smart-home voice assistant that learns from its own interactions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks: speed and memory, as ratios against a baseline measured in the same run.")
app.add_typer(bench_app, name="bench")

out = Console()
err = Console(stderr=True)

DbOption = Annotated[
    Path | None, typer.Option("--db", help="Log store (DuckDB file). Default: $SELFLEARN_DB or the user data dir.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout, nothing else.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same result.")]


@app.command()
def version() -> None:
    """Print the selflearn version."""
    out.print(selflearn.__version__)


@app.command("eval")
def eval_(
    suite: Annotated[str, typer.Argument(help="Suite name; `selflearn eval list` shows them.")],
    seed: SeedOption = 0,
    quick: Annotated[bool, typer.Option("--quick", help="A smaller run that finishes in under 60 s.")] = False,
    home: Annotated[Path | None, typer.Option("--home", help="Run on this home YAML, not the shipped ones.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Run an eval suite: exactly one JSON object on stdout with --json (the README's numbers come from here)."""
    if suite == "list":
        for name in evaluate.available():
            out.print(name)
        return
    try:
        report = evaluate.run(suite, evaluate.EvalConfig(seed=seed, quick=quick, home=home))
    except KeyError as e:
        err.print(f"[red]error:[/red] {e.args[0]}")
        raise typer.Exit(2) from e
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

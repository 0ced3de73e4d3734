"""The ``selflearn`` command. Thin: parse options, call the library, print with Rich (stdout stays machine-clean
where ``--json`` is asked for; progress and tables for people go to stderr).

Errors are handled once, in the app's group (``_Group``, ``describe``): any failure is one line ``error: ...`` on
stderr with exit code 2 (bad argument or input) or 1 (a failure), and with ``--json`` also
``{"error": message, "code": exit code}`` on stdout; the traceback only with ``selflearn --debug``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from typer._click.core import Context as ClickContext  # Typer vendors Click: these two have no public name
from typer._click.exceptions import NoArgsIsHelpError
from typer.core import TyperGroup

import selflearn
from selflearn import progress
from selflearn.errors import SelflearnError, validation_summary

if TYPE_CHECKING:
    pass


os.environ.setdefault("HF_HUB_OFFLINE", "1")


os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class _Group(TyperGroup):
    """The app's command group: a failing command becomes one ``error:`` line and its exit code (``describe``)."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        ctx.meta[_JSON] = "--json" in args
        return super().parse_args(ctx, args)

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, NoArgsIsHelpError):
            raise
        except Exception as e:  # the one place a command's failure is turned into a message
            if ctx.params.get("debug"):
                raise
            raise typer.Exit(_fail(e, as_json=ctx.meta.get(_JSON, False))) from e


class _App(typer.Typer):
    """The Typer app whose call (the ``selflearn`` console script) runs ``main``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        sys.exit(main(kwargs.get("args")))


_JSON = "selflearn.json"


app = _App(
    name="selflearn",
    cls=_Group,
    help="A smart-home voice assistant that learns from its own interactions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        print(selflearn.__version__)
        raise typer.Exit()


@app.callback()
def _global(
    debug: Annotated[bool, typer.Option("--debug", help="On an error, show the Python traceback too.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the selflearn version and exit."),
    ] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="Also log debug details on stderr.")] = 0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr: no progress messages or bars.")
    ] = False,
) -> None:
    """A smart-home voice assistant that learns from its own interactions."""
    progress.configure(progress.QUIET if quiet else min(verbose, progress.VERBOSE))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default: the process arguments) and return its exit code. Commands' failures are
    mapped inside the group; what fails before a command runs (an unknown global option) is mapped here."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = typer.main.get_command(app).main(args, prog_name="selflearn", standalone_mode=False)
    except NoArgsIsHelpError as e:
        e.show()
        return 2
    except Exception as e:
        if "--debug" in args:
            raise
        return _fail(e, as_json="--json" in args)
    return result if isinstance(result, int) else 0


def _fail(e: Exception, *, as_json: bool) -> int:
    """Report a failure: one line on stderr, and the same as a JSON object on stdout with ``--json``."""
    message, code = describe(e)
    if as_json:
        print(json.dumps({"error": message, "code": code}))
    sys.stderr.write(f"error: {message}\n")
    return code


def describe(e: BaseException) -> tuple[str, int]:
    """A one-line message and exit code for any failure: the project's errors, Click's usage errors, files, DuckDB,
    pydantic validation; anything else is an internal error whose traceback ``--debug`` shows."""
    import duckdb
    from pydantic import ValidationError

    if isinstance(e, SelflearnError):
        return _one_line(str(e)), e.exit_code
    if isinstance(e, typer.TyperException):  # Click's usage errors: bad option, value out of range, missing file
        where = getattr(e, "ctx", None)
        prefix = f"{where.command_path}: " if where is not None else ""
        return _one_line(prefix + e.format_message()), e.exit_code
    if isinstance(e, typer.Abort):
        return "aborted", 1
    if isinstance(e, ValidationError):
        return _one_line(f"invalid {e.title}: {validation_summary(e)}"), 2
    if isinstance(e, FileNotFoundError | IsADirectoryError | NotADirectoryError | FileExistsError):
        return _one_line(f"{e.strerror or e}: {e.filename}" if e.filename else str(e)), 2
    if isinstance(e, OSError):
        return _one_line(f"{e.strerror or e}: {e.filename}" if e.filename else str(e)), 1
    if isinstance(e, duckdb.Error):
        return _one_line(str(e).split(". See also")[0]), 1
    return _one_line(f"internal error {type(e).__name__}: {e} (run `selflearn --debug ...` for the traceback)"), 1


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) or "failed"


out = Console()


err = Console(stderr=True)  # a command's human-readable summary; progress and diagnostics are log records


DbOption = Annotated[
    Path | None,
    typer.Option("--db", dir_okay=False, help="Log store (DuckDB file). Default: $SELFLEARN_DB or the user data dir."),
]


JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout, nothing else.")]


SeedOption = Annotated[int, typer.Option("--seed", min=0, help="Random seed; the same seed gives the same result.")]


RetrievalOption = Annotated[
    bool,
    typer.Option(
        "--retrieval/--no-retrieval",
        help="The runtime falls back on retrieval over what works (as interpret and serve do); off to compare.",
    ),
]


PhrasingOption = Annotated[
    Literal["templates", "realistic"],
    typer.Option(
        "--phrasing",
        help="How simulated people word requests: a few shared templates (default) or the realistic long tail.",
    ),
]


def version(as_json: JsonOption = False) -> None:
    """Print the selflearn version."""
    if as_json:
        _print_json({"version": selflearn.__version__})
        return
    out.print(selflearn.__version__)


ArtifactsOption = Annotated[
    Path | None,
    typer.Option(
        "--artifacts", file_okay=False, help="Artifact folder. Default: $SELFLEARN_ARTIFACTS or the user data dir."
    ),
]


def _print_json(value: object) -> None:
    import json

    print(json.dumps(value, default=str))


def _iso_time(value: str) -> datetime:
    """A ``--time`` value: ISO 8601 (no zone is UTC), years 2000-2099 as in the service, so every stage can add
    hours and days to it without leaving the calendar."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError as e:
        raise typer.BadParameter(f"{value!r} is not an ISO time such as 2026-03-02T07:10:00+00:00") from e
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    if not 2000 <= when.year <= 2099:
        raise typer.BadParameter(f"{value!r} is outside the years 2000-2099")
    return when


def _bench_table(title: str, result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(result)
        return
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result.items():
        table.add_row(name, f"{value:,.2f}" if isinstance(value, float) else str(value))
    out.print(table)

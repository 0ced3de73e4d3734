"""The ``selflearn`` command. Thin: parse options, call the library, print with Rich (stdout stays machine-clean
where ``--json`` is asked for; progress and tables for people go to stderr).

Errors are handled once, in the app's group (``_Group``, ``describe``): any failure is one line ``error: ...`` on
stderr with exit code 2 (bad argument or input) or 1 (a failure), and with ``--json`` also
``{"error": message, "code": exit code}`` on stdout; the traceback only with ``selflearn --debug``."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from typer._click.core import Context as ClickContext  # Typer vendors Click: these two have no public name
from typer._click.exceptions import NoArgsIsHelpError
from typer.core import TyperGroup

import selflearn
from selflearn import evaluate, ids, progress
from selflearn.errors import NotFound, SelflearnError, UsageError, validation_summary

if TYPE_CHECKING:
    import uvicorn

    from selflearn.home import Endpoint, Home
    from selflearn.learn import LearnConfig
    from selflearn.pipeline.runtime import Runtime
    from selflearn.rewrite.mining import RewriteTables
    from selflearn.schema import Preference
    from selflearn.service import Service
    from selflearn.store import LogView

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


bench_app = typer.Typer(help="Benchmarks: speed and memory, as ratios against a baseline measured in the same run.")
app.add_typer(bench_app, name="bench")

out = Console()
err = Console(stderr=True)  # a command's human-readable summary; progress and diagnostics are log records
logger = logging.getLogger(__name__)

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


@app.command()
def version(as_json: JsonOption = False) -> None:
    """Print the selflearn version."""
    if as_json:
        _print_json({"version": selflearn.__version__})
        return
    out.print(selflearn.__version__)


@app.command("eval")
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


ArtifactsOption = Annotated[
    Path | None,
    typer.Option(
        "--artifacts", file_okay=False, help="Artifact folder. Default: $SELFLEARN_ARTIFACTS or the user data dir."
    ),
]
artifacts_app = typer.Typer(help="Versioned artifact sets: list them, roll back to an earlier one.")
app.add_typer(artifacts_app, name="artifacts")


def _print_json(value: object) -> None:
    import json

    print(json.dumps(value, default=str))


@app.command()
def ingest(
    sources: Annotated[list[Path], typer.Argument(help="JSONL/Parquet files or folders (searched recursively).")],
    db: DbOption = None,
    quarantine: Annotated[
        Path | None,
        typer.Option("--quarantine", dir_okay=False, help="Where rejected rows go. Default: <db>.quarantine.jsonl."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Validate and store logs; bad rows go to the quarantine file with the reason (never dropped)."""
    from rich.progress import BarColumn, DownloadColumn, TimeRemainingColumn

    from selflearn.ingest import discover
    from selflearn.store import Store

    total = sum(p.stat().st_size for p in discover(sources))
    store = Store(db)
    with (
        store,
        progress.bar(
            "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TimeRemainingColumn()
        ) as bar,
    ):
        task = bar.add_task("ingest", total=total)
        report = store.ingest(sources, quarantine=quarantine, on_progress=lambda n: bar.advance(task, n))
    if as_json:
        _print_json(report.to_dict())
        return
    err.print(
        f"read {report.read:,}  ingested {report.ingested:,}  duplicates {report.duplicates:,}  "
        f"quarantined {report.quarantined:,}  ({report.seconds:.2f}s; quarantine: {report.quarantine_file})"
    )


@app.command()
def forget(
    user: Annotated[str, typer.Argument(help="The user id whose data is deleted (exactly this id).")],
    db: DbOption = None,
    artifacts: ArtifactsOption = None,
    quarantine: Annotated[
        Path | None,
        typer.Option(
            "--quarantine", dir_okay=False, help="Also scrub this quarantine file (the default one always is)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Delete everything about a user (turns, gold, feedback, preferences, quarantined lines, personal artifacts in
    every version, pending feedback rewrites), then scan every file for their id and phrases; exit 1 if any is left."""
    from dataclasses import asdict

    from selflearn.artifacts import ArtifactStore
    from selflearn.feedback import PendingRewrites, pending_root
    from selflearn.forget import forget_user
    from selflearn.store import Store

    ids.check(user, "user")
    with Store(db) as store:
        done = forget_user(
            user,
            store=store,
            artifacts=ArtifactStore(artifacts),
            pending=PendingRewrites(pending_root()),
            quarantine=quarantine,
        )
    if as_json:
        _print_json(asdict(done))
    else:
        err.print(f"forgot {user}: " + ", ".join(f"{v} {k}" for k, v in done.deleted.items()))
        err.print(
            f"scanned {done.files_scanned} files for the id and {done.phrases} phrases: "
            + ("nothing left" if done.verified else "still in " + ", ".join(done.left))
        )
    if not done.verified:
        raise typer.Exit(1)


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


@bench_app.command("ingest")
def bench_ingest(
    rows: Annotated[int, typer.Option("--rows", min=1, help="Turns per file format.")] = 200_000,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Ingest rows/s for Parquet and JSONL (with validation) vs raw DuckDB inserts without validation."""
    from selflearn.ingest_bench import ingest_bench

    result = ingest_bench(rows, seed=seed)
    if as_json:
        _print_json(result)
        return
    from rich.table import Table

    table = Table(title=f"bench ingest ({rows:,} turns)")
    for col in ("format", "rows/s", "rows/min", "baseline rows/s", "ratio"):
        table.add_column(col, justify="right")
    for fmt in ("parquet", "jsonl"):
        r = result[fmt]
        table.add_row(
            fmt,
            f"{r['rows_per_s']:,.0f}",
            f"{r['rows_per_min']:,.0f}",
            f"{r['baseline_rows_per_s']:,.0f}",
            f"{r['ratio_vs_baseline']:.2f}",
        )
    out.print(table)


@app.command()
def rewrite(
    text: Annotated[str, typer.Argument(help="An utterance, as the ASR heard it.")],
    user: Annotated[str, typer.Option("--user", help="Who said it (their personal layer is checked first).")],
    home: Annotated[str, typer.Option("--home", help="A home YAML path or a shipped home id.")] = "maple_house",
    artifacts: Annotated[
        Path | None,
        typer.Option(
            "--artifacts", file_okay=False, help="Artifact root. Default: $SELFLEARN_ARTIFACTS or the data dir."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Try the online rewriter on one utterance with the artifact set in service: the rewrite and its candidates."""
    ids.check(user, "user")
    from selflearn.artifacts import ArtifactStore
    from selflearn.home import find_home
    from selflearn.rewrite.online import OnlineConfig, OnlineRewriter

    the_home = find_home(home)
    current = ArtifactStore(artifacts).current_dir()
    if current is None:
        raise NotFound("no artifact set yet: run `selflearn demo` or `selflearn learn` first")
    rewriter = OnlineRewriter.load(current)
    chosen = rewriter.best(text, user_id=user, home=the_home)
    everything = OnlineRewriter.load(current, config=OnlineConfig(threshold=0.0))
    rows = [
        {
            "text": c.text,
            "layer": c.rule.layer,
            "score": round(c.score, 4),
            "rule": f"{c.rule.source} -> {c.rule.target}",
            "cosine": round(c.cosine, 4),
            "string": round(c.string, 4),
            "phonetic": round(c.phonetic, 4),
            "transferred": c.transferred,
            "entity": c.entity,
        }
        for c in everything.candidates(text, user_id=user, home=the_home)[:5]
    ]
    result = {
        "input": text,
        "rewrite": chosen.text if chosen else None,
        "source": chosen.rule.layer if chosen else "none",
        "score": round(chosen.score, 4) if chosen else None,
        "threshold": rewriter.config.threshold,
        "artifacts": current.name,
        "candidates": rows,
    }
    if as_json:
        _print_json(result)
        return
    from rich.table import Table

    out.print(f"{text!r} -> {result['rewrite']!r} ({result['source']}, artifacts {current.name})")
    table = Table(title=f"candidates (applied only at score >= {rewriter.config.threshold})")
    for col in ("text", "layer", "score", "rule", "cosine", "string", "phonetic", "transferred", "entity"):
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    out.print(table)


def _sizes(value: str) -> list[int]:
    """``--sizes 10000,100000``: positive whole numbers."""
    try:
        sizes = [int(s) for s in value.split(",") if s.strip()]
    except ValueError as e:
        raise typer.BadParameter(f"{value!r} is not a list of whole numbers", param_hint="'--sizes'") from e
    if not sizes or min(sizes) < 1:
        raise typer.BadParameter(f"{value!r}: give one or more sizes of at least 1", param_hint="'--sizes'")
    return sizes


@bench_app.command("rewrite")
def bench_rewrite(
    sizes: Annotated[str, typer.Option("--sizes", help="Index sizes (forms), comma-separated.")] = "10000,100000",
    million: Annotated[
        bool, typer.Option("--million", help="Also 1M forms and 1M retrieval entries (~4 GB RAM, a few min to build).")
    ] = False,
    queries: Annotated[int, typer.Option("--queries", min=1, help="Timed lookups per kind and size.")] = 300,
    utterances: Annotated[int, typer.Option("--utterances", min=1, help="Utterances for the runtime ratio.")] = 300,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Online rewrite lookup p50/p99 vs index size (mined rules; retrieval over what works: encode + ANN + rank),
    and a runtime turn with rewriting vs without (same run)."""
    from selflearn.bench.retrieval import run as run_retrieval
    from selflearn.rewrite.bench import run_bench

    every = [*_sizes(sizes), *([1_000_000] if million else [])]
    result = run_bench(every, queries=queries, utterances=utterances, seed=seed)
    result["retrieval"] = run_retrieval(every, queries=queries, seed=seed)
    if as_json:
        _print_json(result)
        return
    from rich.table import Table

    table = Table(title="bench rewrite: online lookup (ms)")
    cols = ("exact_p50_ms", "exact_p99_ms", "near_p50_ms", "near_p99_ms", "pass_p50_ms", "pass_p99_ms")
    for col in ("forms", "build s", *(c.removesuffix("_ms") for c in cols)):
        table.add_column(col, justify="right")
    for row in result["lookup"]:
        table.add_row(f"{row['forms']:,}", f"{row['build_seconds']:.1f}", *(f"{row[k]:.3f}" for k in cols))
    out.print(table)
    found = Table(title="bench rewrite: retrieval over what works, failing requests (ms)")
    cols = ("p50_ms", "p99_ms", "cpu_p50_ms", "cpu_p99_ms", "encode_p50_ms", "encode_p99_ms")
    for col in ("entries", "build s", *(c.removesuffix("_ms") for c in cols), "rewritten"):
        found.add_column(col, justify="right")
    for row in result["retrieval"]:
        cells = (f"{row[k]:.3f}" for k in cols)
        found.add_row(f"{row['entries']:,}", f"{row['build_seconds']:.1f}", *cells, f"{row['accepted_rate']:.2f}")
    out.print(found)
    out.print({k: v for k, v in result.items() if k not in ("lookup", "retrieval")})


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


@app.command()
def interpret(
    text: Annotated[str | None, typer.Argument(help="What the user said (or give --batch FILE).")] = None,
    home: Annotated[str, typer.Option("--home", help="A shipped home id or a home YAML path.")] = "maple_house",
    device: Annotated[
        str | None, typer.Option("--device", help="The endpoint spoken to (default: the home's first).")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="Who speaks (default: the home's first person).")] = None,
    at_time: Annotated[
        datetime | None,
        typer.Option(
            "--time",
            parser=_iso_time,
            metavar="TIME",
            help="ISO time, years 2000-2099, e.g. 2026-03-02T07:10:00+00:00; no zone is UTC (default: now).",
        ),
    ] = None,
    no_context: Annotated[bool, typer.Option("--no-context", help="Switch context re-ranking off.")] = False,
    artifacts: Annotated[
        Path | None,
        typer.Option(
            "--artifacts", file_okay=False, help="Artifact root. Default: $SELFLEARN_ARTIFACTS or the data dir."
        ),
    ] = None,
    no_rewrite: Annotated[
        bool,
        typer.Option(
            "--no-rewrite", help="Neither the learned rewrites of the artifact set nor retrieval over what works."
        ),
    ] = False,
    batch: Annotated[
        Path | None,
        typer.Option(
            "--batch",
            help="Interpret every line of FILE ('-': stdin) in order on one runtime: plain text, or JSON with "
            "text and optional user/device/time. Prints one JSON turn per line.",
        ),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run one utterance through the runtime and show every stage's decision, scores and timing. The speaker's taught
    preferences come from the log store when it exists; learned rewrites from the artifact set in service."""
    if user is not None:
        ids.check(user, "user")
    if device is not None:
        ids.check(device, "device")
    from selflearn.home import Endpoint, find_home

    if (text is None) == (batch is None):
        raise UsageError("give either TEXT or --batch FILE")
    the_home = find_home(home)
    # a home without endpoints (one imported from an HA without satellites): a microphone in no room
    unplaced = Endpoint(id="cli", name="command line")
    endpoint = the_home.endpoint(device) if device else (the_home.endpoints or [unplaced])[0]
    speaker = user or (the_home.people[0].id if the_home.people else "cli.user")
    runtime = _interpret_runtime(the_home, context=not no_context, rewrite=not no_rewrite, artifacts=artifacts, db=db)
    if batch is not None:
        _interpret_batch(runtime, batch, speaker=speaker, endpoint=endpoint, fixed=at_time)
        return
    assert text is not None
    now = at_time or datetime.now(UTC)
    result = runtime.interpret(text, user_id=speaker, endpoint_id=endpoint.id, now=now, endpoint=endpoint)
    if as_json:
        print(json.dumps({"turn": result.turn.model_dump(mode="json"), "asks_feedback": result.asks_feedback}))
        return
    from rich.table import Table

    table = Table(title=f"{text!r} at {endpoint.id} ({endpoint.type}, {endpoint.area}) by {speaker}")
    table.add_column("stage")
    table.add_column("ms", justify="right")
    table.add_column("decision (top candidates with scores)")
    for name, stage in result.stages.items():
        detail = {k: v for k, v in stage.items() if k != "ms"}
        table.add_row(name, f"{stage.get('ms', 0):.2f}", json.dumps(detail, ensure_ascii=False)[:600])
    out.print(table)
    turn = result.turn
    out.print(f"[bold]{turn.result_status}[/bold] {turn.nlu_intent} {turn.nlu_slots} confidence {turn.nlu_confidence}")
    out.print(f"[green]{result.response}[/green]")


def _interpret_runtime(home: Home, *, context: bool, rewrite: bool, artifacts: Path | None, db: Path | None) -> Runtime:
    """The runtime ``interpret`` runs on: the artifact set in service and retrieval over what works (unless
    ``rewrite`` is off), and each speaker's taught preferences from the log store when it exists (read once per
    speaker). A ``--db`` that names no store is a mistake, not "no preferences"."""
    from selflearn.paths import default_db
    from selflearn.pipeline.runtime import Runtime
    from selflearn.store import Store

    taught: dict[str, list[Preference]] = {}
    has_store = db is not None or default_db().exists()
    if db is not None:
        Store(db, create=False).close()  # say so now, not at the first speaker

    def preferences(user_id: str) -> list[Preference]:
        if user_id not in taught:
            taught[user_id] = []
            if has_store:
                with Store(db, create=False) as store:
                    taught[user_id] = store.preferences(user_id)
        return taught[user_id]

    rewriter = retriever = None
    if rewrite:
        from selflearn.artifacts import ArtifactStore
        from selflearn.rewrite.online import LiveRewriter
        from selflearn.rewrite.retrieval import Retrieval

        published = ArtifactStore(artifacts)
        rewriter = LiveRewriter(published, fallback=Retrieval.load)
        if published.current_dir() is None:
            retriever = Retrieval()  # nothing learned yet: the home's own commands and the day-0 ranker
    return Runtime(home, context=context, rewriter=rewriter, preferences=preferences, retriever=retriever)


def _interpret_batch(
    runtime: Runtime, source: Path, *, speaker: str, endpoint: Endpoint, fixed: datetime | None
) -> None:
    """Every request of ``source`` through ``runtime`` in order (device states carry over from line to line), one
    JSON object per line on stdout (``line``, ``turn``, ``asks_feedback``), a progress bar on stderr. The whole
    file is checked first: a bad line or an unknown device stops the batch before anything runs."""
    from selflearn.batch import BatchError, parse_lines
    from selflearn.home import HomeError

    name = "stdin" if str(source) == "-" else str(source)
    try:
        lines = sys.stdin.read().splitlines() if name == "stdin" else source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read {name}: {e}") from e
    requests = parse_lines(lines, name)
    for r in requests:
        if r.device is not None:
            try:
                runtime.home.endpoint(r.device)
            except HomeError as e:
                raise BatchError(f"{name}:{r.line}: {e}") from e
    for r in progress.track(requests, "interpret"):
        result = runtime.interpret(
            r.text,
            user_id=r.user or speaker,
            endpoint_id=r.device or endpoint.id,
            now=r.time or fixed or datetime.now(UTC),
            endpoint=None if r.device else endpoint,
        )
        turn = result.turn.model_dump(mode="json")
        sys.stdout.write(json.dumps({"line": r.line, "turn": turn, "asks_feedback": result.asks_feedback}) + "\n")
    sys.stdout.flush()


@bench_app.command("interpret")
def bench_interpret(
    per_intent: Annotated[int, typer.Option("--per-intent", min=1, help="hassil samples per intent and home.")] = 8,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Best of N timings per utterance.")] = 3,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Full pipeline vs plain hassil ``recognize`` per utterance (median, p99, ratio), same utterances, same run."""
    import json

    from selflearn.home import shipped_homes
    from selflearn.pipeline import bench

    report = bench.run(shipped_homes(), per_intent=per_intent, repeats=repeats, seed=seed)
    if as_json:
        print(json.dumps({k: round(v, 4) for k, v in report.items()}))
        return
    for key, value in report.items():
        out.print(f"{key:28} {value:10.3f}")


@app.command()
def demo(
    homes: Annotated[int, typer.Option("--homes", min=1, help="Simulated homes (generated, seeded).")] = 32,
    days: Annotated[
        int, typer.Option("--days", min=1, help="Simulated days; learning runs each night in between.")
    ] = 14,
    seed: SeedOption = 0,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", dir_okay=False, help="HTML report path. Default: <data dir>/demo-report.html"),
    ] = None,
    db: DbOption = None,
    artifacts: Annotated[
        Path | None,
        typer.Option(
            "--artifacts", file_okay=False, help="Artifact root. Default: $SELFLEARN_ARTIFACTS or the data dir."
        ),
    ] = None,
    teach: Annotated[
        bool, typer.Option("--teach/--no-teach", help="People may also teach and answer feedback questions.")
    ] = True,
    phrasing: PhrasingOption = "templates",
    retrieval: RetrievalOption = True,
    as_json: JsonOption = False,
) -> None:
    """Simulate homes for some days; each night learn from the logs so far and swap in the new artifacts. Prints
    the daily defect rates (by failure point, from gold) and writes an HTML report with the curve."""
    from rich import box
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from selflearn import paths
    from selflearn.artifacts import ArtifactStore
    from selflearn.loop import DayStats, run_loop
    from selflearn.report import demo_cells, write_report
    from selflearn.sim import SimConfig, generate_homes
    from selflearn.sim.run import add_log
    from selflearn.store import Store

    world = generate_homes(homes, seed)
    sim_config = SimConfig(phrasing=phrasing)
    report_path = out_path or paths.data_dir() / "demo-report.html"
    with (
        Store(db) as store,
        progress.bar(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()) as bar,
    ):
        control_task = bar.add_task("control: the same days, nothing learned", total=days)
        control = run_loop(
            world,
            days=days,
            seed=seed,
            artifacts=ArtifactStore(artifacts),
            sim_config=sim_config,
            on_day=lambda _stats: bar.advance(control_task),
            learning=False,
            retrieval=retrieval,
        )
        task = bar.add_task("starting", total=days)

        def day_done(stats: DayStats) -> None:
            bar.advance(task)
            logger.info(
                f"day {stats.day}: {stats.turns:,} turns, defect rate {stats.defect_rate:.1%}, "
                f"rewritten {stats.rewrite_rate:.1%} (retrieval {stats.retrieval_rate:.1%}), "
                f"rules {stats.rules_global} global / "
                f"{stats.rules_personal} users personal"
            )

        result = run_loop(
            world,
            days=days,
            seed=seed,
            artifacts=ArtifactStore(artifacts),
            sim_config=sim_config,
            on_day=day_done,
            on_stage=lambda msg: bar.update(task, description=msg),
            on_log=partial(add_log, store),
            teaching=teach,
            retrieval=retrieval,
        )
    metrics = result.metrics(control.days)
    notes = [
        f"{homes} generated homes, {days} days, seed {seed}. Day 1 runs with nothing learned; each night "
        "selflearn learns from the logs so far (no gold) and swaps in the new artifact set."
        + (" People may also teach (preferences, names) and answer feedback questions." if teach else "")
        + (
            " Both curves fall back on retrieval over what works (each home's own commands from day 1, what worked "
            "after each night)."
            if retrieval
            else " Without retrieval over what works (--no-retrieval)."
        ),
        "Defects and failure points come from the simulator's gold and are used for this report only. The dashed "
        "curve replays the same seeded days with nothing learned, so the gap between the curves is the learning.",
    ]
    write_report(
        result.days,
        report_path,
        control=control.days,
        title="selflearn demo: the assistant learns from its own logs",
        notes=notes,
    )
    if as_json:
        from dataclasses import asdict

        days_out, control_out = [asdict(d) for d in result.days], [asdict(d) for d in control.days]
        _print_json(
            {
                "days": days_out,
                "control": control_out,
                "metrics": metrics,
                "retrieval": retrieval,
                "report": str(report_path),
            }
        )
        return
    table = Table(
        title=f"% of turns per day ({homes} homes, seed {seed}; failure points from gold)",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    for col in ("day", "turns", "defect", "control", "wake", "asr", "nlu", "er", "result", "goals", "rewrite"):
        table.add_column(col, justify="right")
    for d, c in zip(result.days, control.days, strict=True):
        table.add_row(*demo_cells(d, c))
    out.print(table)
    out.print(
        f"defect rate day 1 {metrics['defect_rate_day1']:.1%} -> day {days} {metrics['defect_rate_last']:.1%}; "
        f"against the same days with nothing learned: {metrics.get('reduction_vs_control_last', 0.0):.1%} lower on "
        f"day {days}, {metrics.get('reduction_vs_control_mean', 0.0):.1%} lower on average over days 2-{days}"
    )
    out.print(f"report: {report_path}")


tokens_app = typer.Typer(help="Bearer tokens for `selflearn serve`: one per home, admin tokens for learn.")
app.add_typer(tokens_app, name="tokens")
prefs_app = typer.Typer(help="What users taught the assistant (teams, food, music, names): list, set, delete.")
app.add_typer(prefs_app, name="prefs")


@tokens_app.command("create")
def tokens_create(
    home: Annotated[str | None, typer.Option("--home", help="The home this token reaches.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="An admin token (POST /v1/learn), for no home.")] = False,
    name: Annotated[str, typer.Option("--name", help="A note, e.g. which device uses it.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Create a token and print it once (only its SHA-256 hash is stored)."""
    from selflearn.tokens import Tokens

    try:
        token, info = Tokens().create(home=home, admin=admin, name=name)
    except ValueError as e:
        raise UsageError(f"{e}; pass --home H or --admin") from e
    if as_json:
        print(json.dumps({"token": token, "id": info.id, "home": info.home, "admin": info.admin}))
        return
    err.print(f"token {info.id} for {'admin' if admin else 'home ' + str(home)} (shown once, keep it safe):")
    print(token)


@tokens_app.command("list")
def tokens_list(as_json: JsonOption = False) -> None:
    """List tokens (ids, homes, names; never the tokens)."""
    from dataclasses import asdict

    from selflearn.tokens import Tokens

    infos = [{k: v for k, v in asdict(i).items() if k != "sha256"} for i in Tokens().list()]
    if as_json:
        print(json.dumps({"tokens": infos}))
        return
    for i in infos:
        out.print(f"{i['id']}  {'admin' if i['admin'] else i['home']}  {i['created']}  {i['name']}")


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="The id shown by `tokens list`.")], as_json: JsonOption = False
) -> None:
    """Revoke a token; a running service refuses it from the next request on."""
    from selflearn.tokens import Tokens

    if not Tokens().revoke(token_id):
        raise SelflearnError(f"no token {token_id!r}")
    if as_json:
        _print_json({"revoked": token_id})
        return
    err.print(f"revoked {token_id}")


@prefs_app.command("list")
def prefs_list(
    user: Annotated[str, typer.Argument(help="User id.")], db: DbOption = None, as_json: JsonOption = False
) -> None:
    """List a user's preferences (stored in the log store, table `preferences`)."""
    ids.check(user, "user")
    from selflearn.store import Store

    with Store(db) as store:
        prefs = store.preferences(user)
    if as_json:
        print(json.dumps({"user_id": user, "preferences": [p.model_dump(mode="json") for p in prefs]}))
        return
    for p in prefs:
        out.print(f"{p.kind:12} {p.key or '-':20} {p.value}  (scope {p.scope}, {p.source}, {p.ts:%Y-%m-%d})")


@prefs_app.command("set")
def prefs_set(
    user: Annotated[str, typer.Argument(help="User id.")],
    kind: Annotated[str, typer.Argument(help="team | cuisine | music_genre | place | device_alias | phrase")],
    value: Annotated[str, typer.Argument(help="The value; teams, cuisines and genres are canonicalised.")],
    key: Annotated[str, typer.Option("--key", help="The phrase it applies to (place, device_alias, phrase).")] = "",
    scope: Annotated[str, typer.Option("--scope", help="A home id, or * for every home.")] = "*",
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set (add or replace) one preference of a user."""
    ids.check(user, "user")
    from selflearn.schema import Preference
    from selflearn.store import Store
    from selflearn.teach import TASTE_KINDS, vocabulary

    if kind in TASTE_KINDS:
        found = vocabulary().lookup(value, (kind,))
        if len(found) == 1:
            value = found[0][1]
    pref = Preference(user_id=user, kind=kind, key=key, value=value, scope=scope, ts=datetime.now(UTC))
    with Store(db) as store:
        store.put_preference(pref)
    if as_json:
        _print_json({"preference": pref.model_dump(mode="json")})
        return
    err.print(f"{user}: {kind} {key + ' ' if key else ''}= {value}")


@prefs_app.command("delete")
def prefs_delete(
    user: Annotated[str, typer.Argument(help="User id.")],
    kind: Annotated[str | None, typer.Option("--kind", help="Only this kind.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="Only this key.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a user's preferences (all of them, or one kind / key)."""
    ids.check(user, "user")
    from selflearn.store import Store

    with Store(db) as store:
        n = store.delete_preferences(user, kind=kind, key=key)
    if as_json:
        _print_json({"user_id": user, "deleted": n})
        return
    err.print(f"deleted {n} preference(s) of {user}")


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8000,
    home: Annotated[
        list[Path] | None,
        typer.Option(
            "--home", exists=True, dir_okay=False, help="Home YAML to serve (repeatable). Default: the shipped homes."
        ),
    ] = None,
    db: DbOption = None,
    artifacts: Annotated[
        Path | None,
        typer.Option(
            "--artifacts", file_okay=False, help="Artifact folder. Default: $SELFLEARN_ARTIFACTS or the data dir."
        ),
    ] = None,
    wyoming: Annotated[
        str | None,
        typer.Option(
            "--wyoming",
            help="Also serve Home Assistant's Wyoming integration on this URI (tcp://HOST:PORT), same process and "
            "store, so POST /v1/learn learns from it while it runs. Needs exactly one --home.",
        ),
    ] = None,
) -> None:
    """Run the HTTP service (OpenAPI at /docs); tokens come from `selflearn tokens create --home H`."""
    import uvicorn

    from selflearn.home import load_home, shipped_homes
    from selflearn.service import Service, create_app

    homes = [load_home(p) for p in home] if home else shipped_homes()
    if wyoming is not None and (len(homes) != 1 or not wyoming.startswith(("tcp://", "unix://"))):
        raise UsageError("--wyoming needs a tcp://HOST:PORT or unix://PATH URI and exactly one --home")
    _check_listen(host, port)
    service = Service(homes, db=db, artifacts=artifacts)
    app = create_app(service)
    err.print(f"serving {len(homes)} home(s) on http://{host}:{port} (OpenAPI: /docs)")
    # uvicorn re-raises a captured SIGTERM after its shutdown; with the default handler that would kill the process
    # before the buffered turns are written, so SIGTERM exits through ``finally`` instead
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        if wyoming is None:
            uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
        else:
            err.print(f"and Home Assistant's Wyoming integration on {wyoming}")
            _serve_both(
                uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False), service, wyoming
            )
    finally:
        service.close()


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _serve_both(config: uvicorn.Config, service: Service, uri: str) -> None:
    """uvicorn and the Wyoming server in one event loop; uvicorn owns the signals and ends both."""
    import asyncio

    import uvicorn

    from selflearn.integrations.wyoming import WyomingAgent
    from selflearn.integrations.wyoming import serve as serve_wyoming

    async def both() -> None:
        agent = WyomingAgent(service, next(iter(service.homes.values())))
        started = asyncio.Event()
        task = asyncio.create_task(serve_wyoming(uri, agent, started, handle_signals=False))
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task.done():
            task.result()  # it could not listen: raise that here
        try:
            await uvicorn.Server(config).serve()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    try:
        asyncio.run(both())
    except OSError as e:
        raise UsageError(f"cannot listen on {uri}: {e}") from e


@app.command()
def wyoming(
    uri: Annotated[
        str, typer.Option("--uri", help="Where to listen: tcp://HOST:PORT or unix://PATH.")
    ] = "tcp://0.0.0.0:10700",
    home: Annotated[
        str, typer.Option("--home", help="The home (shipped id or YAML file) whose names HA's entities carry.")
    ] = "maple_house",
    db: DbOption = None,
    artifacts: Annotated[
        Path | None, typer.Option("--artifacts", help="Artifact folder. Default: $SELFLEARN_ARTIFACTS or the data dir.")
    ] = None,
) -> None:
    """Serve Home Assistant's Wyoming integration (2024.11+) as an intent service; see docs/home-assistant.md."""
    import asyncio
    import logging

    from selflearn.home import find_home
    from selflearn.integrations.wyoming import WyomingAgent, serve
    from selflearn.service import Service

    if not uri.startswith(("tcp://", "unix://")):
        raise UsageError(f"--uri must be tcp://HOST:PORT or unix://PATH, not {uri!r}")
    the_home = find_home(home)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service = Service([the_home], db=db, artifacts=artifacts)
    err.print(f"wyoming intent service for home {the_home.id} on {uri} (store {service.store.path})")
    try:
        asyncio.run(serve(uri, WyomingAgent(service, the_home)))
    except KeyboardInterrupt:
        pass
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot listen on {uri}: {e}") from e
    finally:
        service.close()


def _check_listen(host: str, port: int) -> None:
    """A taken or unusable address is one error line before anything starts (uvicorn would log it and exit 3)."""
    import socket

    try:
        socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET).close()
    except OSError as e:
        raise SelflearnError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e


@bench_app.command("serve")
def bench_serve(
    requests: Annotated[int, typer.Option("--requests", min=1, help="Timed interpret requests.")] = 3000,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Requests in flight.")] = 4,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Load the service on 127.0.0.1: interpret req/s, p50/p99, errors; GET /healthz as the same-run baseline."""
    from selflearn.servebench import run_bench

    result = run_bench(requests=requests, concurrency=concurrency, seed=seed)
    if as_json:
        print(json.dumps(result))
        return
    out.print(result)


@bench_app.command("dashboard")
def bench_dashboard(
    turns: Annotated[int, typer.Option("--turns", min=1, help="Generated turns in the store.")] = 1_000_000,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Timed loads of each page.")] = 5,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Every dashboard page's load time on 127.0.0.1 with TURNS in the store; GET /healthz as the same-run baseline."""
    from selflearn.dashboard_bench import run_bench

    result = run_bench(turns=turns, repeats=repeats, seed=seed)
    if as_json:
        print(json.dumps(result))
        return
    out.print(result)


@app.command()
def simulate(
    homes: Annotated[int, typer.Option("--homes", min=1, help="Generated homes (seeded).")] = 10,
    days: Annotated[int, typer.Option("--days", min=1, help="Simulated days.")] = 1,
    seed: SeedOption = 0,
    out_dir: Annotated[
        Path,
        typer.Option("--out", file_okay=False, help="Folder for turns/gold/feedback Parquet and the homes (homes/)."),
    ] = Path("sim-out"),
    db: DbOption = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Only write Parquet, do not add to the store.")] = False,
    home: Annotated[
        Path | None, typer.Option("--home", exists=True, dir_okay=False, help="Simulate this home YAML instead.")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes (split by home; same records).")] = 1,
    phrasing: PhrasingOption = "templates",
    retrieval: Annotated[
        bool,
        typer.Option(
            "--retrieval/--no-retrieval",
            help="Fall back on retrieval over each home's own commands, as interpret does with nothing learned "
            "(each home's index built once, 10-20 s, then cached).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Simulate people living with the untrained assistant: Parquet logs + gold, added to the store; prints the
    defect rate and where it fails (from gold)."""
    from selflearn.home import dump_home, load_home
    from selflearn.sim import SimConfig, generate_homes
    from selflearn.sim.run import record, simulate, write_logs

    world = [load_home(home)] if home else generate_homes(homes, seed)
    config = SimConfig(phrasing=phrasing)
    with progress.bar() as bar:
        task = bar.add_task("simulate", total=len(world) * days)
        logs = simulate(
            world,
            days=days,
            seed=seed,
            config=config,
            workers=workers,
            on_home_day=lambda n: bar.advance(task, n),
            retrieval=retrieval,
        )
    paths = write_logs(logs, out_dir)
    (out_dir / "homes").mkdir(exist_ok=True)
    for simulated in world:  # the world beside its logs: `selflearn learn --home OUT/homes` abstracts over its names
        dump_home(simulated, ids.child_path(out_dir / "homes", f"{simulated.id}.yaml"))
    stats = record(logs, db, store=not no_store)
    if as_json:
        files = {k: str(p) for k, p in paths.items()}
        summary = {"homes": len(world), "days": days, "seed": seed, "phrasing": phrasing, "retrieval": retrieval}
        _print_json({**summary, **stats, "files": files})
        return
    from rich.table import Table

    table = Table(title=f"untrained assistant: {len(world)} homes x {days} days (seed {seed}; from gold)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in stats.items():
        table.add_row(name, f"{int(value):,}" if name == "turns" else f"{value:.1%}")
    out.print(table)
    stored = "" if no_store else " and added them to the store"
    err.print(f"wrote {', '.join(str(p) for p in paths.values())}{stored}")


@bench_app.command("wyoming")
def bench_wyoming(
    requests: Annotated[int, typer.Option("--requests", help="Timed requests per kind.")] = 1000,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed requests per kind first.")] = 50,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Wyoming round trip (new connection per request, as HA) vs HTTP interpret/conversation on 127.0.0.1: p50/p99."""
    from selflearn.integrations.bench import run_bench

    result = run_bench(requests=requests, warmup=warmup, seed=seed)
    if as_json:
        print(json.dumps(result))
        return
    out.print(result)


@bench_app.command("simulate")
def bench_simulate(
    homes: Annotated[int, typer.Option("--homes", min=1, help="Generated homes.")] = 30,
    days: Annotated[int, typer.Option("--days", min=1, help="Days per home.")] = 2,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes for the parallel run.")] = 2,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Runs per mode; the fastest is kept.")] = 3,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Simulated turns per minute (1 process and --workers processes) vs the runtime alone interpreting the same
    utterances (the floor: the simulator cannot be faster than the pipeline it drives)."""
    from selflearn.sim.bench import bench_simulate as run_bench

    result = run_bench(homes=homes, days=days, workers=workers, seed=seed, repeats=repeats)
    if as_json:
        _print_json(result)
        return
    from rich.table import Table

    table = Table(title=f"bench simulate ({homes} homes x {days} days)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result.items():
        table.add_row(name, f"{value:,.2f}" if isinstance(value, float) else str(value))
    out.print(table)


@app.command("fpi")
def fpi_(
    days: Annotated[
        int, typer.Option("--days", min=1, help="Simulate this many days (or, with --db, the last N days).")
    ] = 3,
    seed: SeedOption = 0,
    db: Annotated[
        Path | None,
        typer.Option("--db", exists=True, dir_okay=False, help="Read the logs from this store instead of simulating."),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option("--home", exists=True, dir_okay=False, help="Simulate this home YAML, not the shipped ones."),
    ] = None,
    top: Annotated[int, typer.Option("--top", min=0, help="Failing utterance forms to list per stage.")] = 5,
    as_json: JsonOption = False,
) -> None:
    """Failure-point isolation: failure counts by pipeline stage and the top failing utterance forms per stage.

    The model is trained on the same logs' weak labels (rule calls + rephrase diffs; never gold)."""
    from selflearn.fpi import fpi_report

    report = fpi_report(days=days, seed=seed, db=db, home=home, top=top)
    if as_json:
        _print_json(report)
        return
    from rich.table import Table

    table = Table(
        title=f"failure points: {report['turns']} turns, {report['dialogues']} dialogues ({report['source']})"
    )
    table.add_column("stage")
    table.add_column("turns", justify="right")
    table.add_column("share", justify="right")
    table.add_column("top failing utterance forms")
    for stage, row in report["stages"].items():
        forms = "; ".join(f"{f['text']} ({f['count']})" for f in row["top_forms"]) if stage != "correct" else ""
        table.add_row(stage, str(row["count"]), f"{row['share']:.1%}", forms)
    out.print(table)


@bench_app.command("labels")
def bench_labels_(
    dialogues: Annotated[
        int, typer.Option("--dialogues", min=1, help="Synthetic dialogues to train and label.")
    ] = 100_000,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Label-model training time (cached MiniLM embeddings) and inference turns/s vs defect-signal scoring."""
    from selflearn.labels.bench import bench_labels

    _bench_table("bench labels", bench_labels(dialogues, seed=seed), as_json)


@bench_app.command("fpi")
def bench_fpi_(
    dialogues: Annotated[
        int, typer.Option("--dialogues", min=1, help="Synthetic dialogues to train and label.")
    ] = 100_000,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """FPI training time and dialogues/min for the learned model vs the rule baseline."""
    from selflearn.labels.bench import bench_fpi

    _bench_table("bench fpi", bench_fpi(dialogues, seed=seed), as_json)


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


@app.command("learn")
def learn_(
    db: DbOption = None,
    artifacts: ArtifactsOption = None,
    rephrase_model: Annotated[
        bool, typer.Option("--rephrase-model", help="Detect rephrases with the MiniLM span model, not the rule.")
    ] = False,
    no_shadow: Annotated[
        bool, typer.Option("--no-shadow", help="Publish without the held-out-day shadow check.")
    ] = False,
    labels: Annotated[
        bool, typer.Option("--labels", help="Also train the label model and the failure-point (FPI) model.")
    ] = False,
    encoder: Annotated[
        bool, typer.Option("--encoder", help="Also fine-tune the retrieval encoder on the mined repair pairs.")
    ] = False,
    home: Annotated[
        list[Path] | None,
        typer.Option(
            "--home",
            exists=True,
            help="Home YAML(s) or folder(s) of them whose names pattern rules use (default: shipped homes).",
        ),
    ] = None,
    allow_shrink: Annotated[
        bool, typer.Option("--allow-shrink", help="Publish even if the new set drops most of the rules in service.")
    ] = False,
    engine: Annotated[
        Literal["duckdb", "spark"],
        typer.Option("--engine", help="Where the mining runs: embedded (duckdb) or Apache Spark (spark)."),
    ] = "duckdb",
    master: Annotated[
        str, typer.Option("--master", help="Spark master for --engine spark: local[2], spark://host:7077, k8s://...")
    ] = "local[2]",
    parquet: Annotated[
        str | None,
        typer.Option("--parquet", help="Learn from this Parquet log dataset (selflearn export), not the store."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Learn from the stored logs (signals, rewrite mining, shadow check) and publish one artifact set atomically."""
    from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

    from selflearn.artifacts import ArtifactStore
    from selflearn.learn import DEFAULT_LEARNERS, LEARNERS, LearnConfig, learn

    chosen = {*DEFAULT_LEARNERS, *(["span"] * rephrase_model), *(["labels", "fpi"] * labels), *(["encoder"] * encoder)}
    logs = _learn_logs(db, parquet)
    from selflearn.home import load_home, shipped_homes

    learners = tuple(name for name in LEARNERS if name in chosen)
    config = LearnConfig(shadow=not no_shadow, learners=learners, allow_shrink=allow_shrink)
    files = [f for p in home or () for f in (sorted(p.glob("*.y*ml")) if p.is_dir() else [p])]
    homes = [load_home(f) for f in files] if home else shipped_homes()
    with progress.bar(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()) as bar:
        task = bar.add_task("learning", total=None)

        def step(message: str) -> None:
            logger.info(message)
            bar.update(task, description=message)

        with _spark_mining(engine, master, parquet, logs, config, homes) as mine:
            report = learn(logs, ArtifactStore(artifacts), config=config, progress=step, homes=homes, mine=mine)
    if as_json:
        _print_json(report.to_dict())
    if report.refused is not None:  # the report still says what was learned; exit 1 says nothing was published
        err.print(f"[red]error:[/red] {report.refused}")
        raise typer.Exit(1)
    if as_json:
        return
    from rich.table import Table

    table = Table(title="learn")
    table.add_column("what")
    table.add_column("value", justify="right")
    rows: list[tuple[str, object]] = [
        ("turns", f"{report.turns:,}"),
        ("defect rate (signals)", f"{report.defect_rate:.1%}"),
        ("global rewrites", report.global_rewrites),
        ("global pattern rewrites", report.global_patterns),
        ("personal rewrites", f"{report.personal_rewrites} ({report.personal_users} users)"),
        ("rephrase detector", report.rephrase_detector),
    ]
    if report.shadow is not None:
        s = report.shadow
        rows.append(
            (
                f"shadow (since {s.held_out_since[:16]})",
                f"{s.defect_rate_before:.1%} -> {s.defect_rate_after:.1%}, {'accepted' if s.accepted else 'REJECTED'}"
                f" ({s.replayed:,} turns replayed, {s.log_only:,} log-only: no home configuration)",
            )
        )
    rows.append(("artifact version", f"{report.version} ({'published' if report.published else 'previous kept'})"))
    for name, value in rows:
        table.add_row(name, str(value))
    out.print(table)


def _learn_logs(db: Path | None, parquet: str | None) -> LogView:
    """The logs ``learn`` reads on the driver: the store's, or a Parquet log dataset's."""
    from selflearn.store import LogView, Store

    if parquet is not None:
        from selflearn.engines.dataset import FEEDBACK, TURNS, read_table

        root = Path(parquet)
        return LogView(read_table(root, TURNS).to_arrow(), read_table(root, FEEDBACK).to_arrow())
    store = Store(db, create=False)
    try:
        return store.logs()
    finally:
        store.close()


@contextmanager
def _spark_mining(
    engine: str, master: str, parquet: str | None, logs: LogView, config: LearnConfig, homes: Sequence[Home]
) -> Iterator[Callable[[datetime | None], RewriteTables] | None]:
    """For ``--engine spark``: a ``mine(before)`` running the Spark miner over the Parquet dataset (the store's
    logs exported to a scratch one when no --parquet is given). A session already running (a notebook's, a
    Databricks cluster's) is used and left running; one started here stops afterwards."""
    if engine != "spark":
        yield None
        return
    import tempfile

    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from selflearn.engines.dataset import write_dataset
    from selflearn.engines.spark import SparkMiner, read_logs, session

    with tempfile.TemporaryDirectory(prefix="selflearn-logs-") as scratch:
        if parquet is None:
            write_dataset(Path(scratch), logs.turns(), logs.feedback())
        running = SparkSession.getActiveSession()
        spark = running or session(master)
        try:
            turns, feedback = read_logs(spark, parquet or scratch)
            miner = SparkMiner(spark, config.mining)

            def mine(before: datetime | None) -> RewriteTables:
                chosen = turns if before is None else turns.where(F.col("ts") < F.lit(before))
                return miner.fit(chosen, feedback, homes=homes)

            yield mine
        finally:
            if running is None:
                spark.stop()


@app.command("export")
def export(
    parquet: Annotated[Path, typer.Option("--parquet", file_okay=False, help="Root of the Parquet log dataset.")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write the store's logs (turns, feedback; never gold) as a Parquet dataset partitioned by day and home hash,
    which both engines (and any Spark cluster) read; appends to an existing dataset."""
    from selflearn.engines.dataset import write_dataset
    from selflearn.store import Store

    store = Store(db, create=False)
    try:
        logs = store.logs()
        written = write_dataset(parquet, logs.turns(), logs.feedback())
    finally:
        store.close()
    if as_json:
        _print_json({"root": str(parquet), **written})
        return
    err.print(f"wrote {written['turns']:,} turns and {written['feedback']:,} feedback rows under {parquet}")


@bench_app.command("learn")
def bench_learn(
    turns: Annotated[int, typer.Option("--turns", min=1, help="Generated turns to mine.")] = 1_000_000,
    baseline_turns: Annotated[
        int, typer.Option("--baseline-turns", min=1, help="Turns for the row-by-row Python baseline.")
    ] = 100_000,
    finetune_pairs: Annotated[
        int,
        typer.Option("--finetune-pairs", help="Also time fine-tuning the retrieval encoder on this many mined pairs."),
    ] = 0,
    engine: Annotated[
        Literal["duckdb", "spark"],
        typer.Option("--engine", help="spark: mine the same logs with both engines in this run and compare."),
    ] = "duckdb",
    master: Annotated[str, typer.Option("--master", help="Spark master for --engine spark.")] = "local[2]",
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Mining throughput (signals + chains + absorbing chain + guardrails) vs a row-by-row Python baseline; with
    --finetune-pairs also the encoder fine-tuning time (rewrite.finetune); with --engine spark the Spark engine
    against the embedded one on the same Parquet logs (throughput, and whether the tables are equal)."""
    from selflearn.learn_bench import learn_bench

    if engine == "spark":
        from selflearn.bench.engines import engines_bench

        result = engines_bench(turns, seed=seed, master=master, log=err.print)
        _bench_table(f"bench learn --engine spark ({turns:,} turns)", result, as_json)
        return
    _bench_table(
        f"bench learn ({turns:,} turns)",
        learn_bench(turns, seed=seed, baseline_turns=baseline_turns, finetune_pairs=finetune_pairs),
        as_json,
    )


@app.command()
def teach(
    text: Annotated[str, typer.Argument(help='A teaching statement, e.g. "I\'m a Warriors fan".')],
    user: Annotated[str, typer.Option("--user", help="Who teaches.")],
    home: Annotated[str, typer.Option("--home", help="A shipped home id or a home YAML path.")] = "maple_house",
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Teach the assistant one thing by statement; stored in the log store, used by the user's next request
    (`selflearn interpret ... --user U`, the service, the simulator). Multi-turn teaching: the service or voice."""
    ids.check(user, "user")
    from selflearn.home import find_home
    from selflearn.store import Store
    from selflearn.teach import Teacher

    the_home = find_home(home)
    with Store(db) as store:
        reply = Teacher(store).handle(text, user_id=user, home=the_home, now=datetime.now(UTC), last_turn=None)
    if reply is None:
        raise SelflearnError('not a teaching statement: try "I\'m a Warriors fan" or "when I say X I mean Y"')
    if as_json:
        taught = [p.model_dump(mode="json") for p in reply.preferences]
        print(json.dumps({"response": reply.response, "preferences": taught}))
        return
    out.print(reply.response)


homes_app = typer.Typer(help="Homes: the shipped ones, and seeded random homes to try any suite on (`--home FILE`).")
app.add_typer(homes_app, name="homes")


@homes_app.command("list")
def homes_list(as_json: JsonOption = False) -> None:
    """The shipped homes: id, areas, devices, endpoints, people."""
    from selflearn.home import shipped_homes

    rows = [
        {"id": h.id, "areas": len(h.areas), "devices": len(h.devices), "endpoints": len(h.endpoints),
         "people": len(h.people)}
        for h in shipped_homes()
    ]  # fmt: skip
    if as_json:
        _print_json({"homes": rows})
        return
    from rich.table import Table

    table = Table(title="shipped homes")
    for col in rows[0]:
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    out.print(table)


@homes_app.command("import-ha")
def homes_import_ha(
    out_file: Annotated[Path, typer.Option("--out", help="Home YAML to write.")],
    config_dir: Annotated[
        Path | None, typer.Argument(help="Home Assistant config directory (with .storage/); or use --url.")
    ] = None,
    home_id: Annotated[str, typer.Option("--home-id", help="Id of the imported home (slugged).")] = "home_assistant",
    url: Annotated[str | None, typer.Option("--url", help="A running Home Assistant: http://HOST:8123.")] = None,
    token: Annotated[
        str | None, typer.Option("--token", envvar="HA_TOKEN", help="Long-lived access token (or $HA_TOKEN).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Import the home HA's Assist sees (exposed entities, names, aliases, areas, floors) as a home YAML."""
    from selflearn.home import dump_home
    from selflearn.integrations.ha_import import fetch, read_config_dir, to_home

    if (config_dir is None) == (url is None) or (url is not None and not token):
        raise UsageError("give either CONFIG_DIR or --url URL --token TOKEN")
    config = read_config_dir(config_dir) if config_dir is not None else fetch(str(url), str(token))
    imported = to_home(config, home_id=home_id)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    dump_home(imported.home, out_file)
    if as_json:
        _print_json({**imported.to_json(), "out": str(out_file)})
        return
    home = imported.home
    counts = f"{len(home.areas)} areas, {len(home.devices)} devices, {len(home.endpoints)} endpoints"
    out.print(f"wrote {out_file}: {counts}")
    for skipped in imported.skipped:
        out.print(f"skipped {skipped.entity_id}: {skipped.reason}")


@homes_app.command("ha-fixtures")
def homes_ha_fixtures(
    config_dir: Annotated[Path, typer.Argument(help="Folder to write a Home Assistant .storage/ into.")],
    pad: Annotated[
        bool, typer.Option("--pad/--no-pad", help="Add the rest of a house (13 areas, 112 entities).")
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """HA's intent-test fixture home as HA registry files, for `homes import-ha` and `eval peer-ha --ha-config`."""
    import yaml

    from selflearn.integrations.ha_fixtures import fixture_config, merged, padding, write_config_dir
    from selflearn.suites.peer_ha import TESTS_DIR

    fixtures = yaml.safe_load((TESTS_DIR / "_fixtures.yaml").read_text(encoding="utf-8"))
    config = merged(fixture_config(fixtures), padding()) if pad else fixture_config(fixtures)
    storage = write_config_dir(config, config_dir)
    if as_json:
        _print_json({"storage": str(storage), "areas": len(config.areas), "entities": len(config.entities)})
        return
    out.print(f"wrote {storage}: {len(config.areas)} areas, {len(config.entities)} entities")


@homes_app.command("generate")
def homes_generate(
    out_dir: Annotated[Path, typer.Option("--out", file_okay=False, help="Folder to write <home id>.yaml files into.")],
    count: Annotated[int, typer.Option("--count", min=1, help="How many homes.")] = 1,
    seed: SeedOption = 777,
    as_json: JsonOption = False,
) -> None:
    """Write seeded random homes as YAML (the simulator's generator): homes no developer tuned on, for `--home`."""
    from selflearn.home import dump_home
    from selflearn.sim import generate_homes

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for home in generate_homes(count, seed=seed):
        path = ids.child_path(out_dir, f"{home.id}.yaml")
        dump_home(home, path)
        written.append({"id": home.id, "path": str(path)})
    if as_json:
        _print_json({"homes": written})
        return
    for row in written:
        out.print(row["path"])

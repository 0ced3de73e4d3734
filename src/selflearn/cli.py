"""The ``selflearn`` command. Thin: parse options, call the library, print with Rich (stdout stays machine-clean
where ``--json`` is asked for; progress and tables for people go to stderr)."""

from __future__ import annotations

import json
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


ArtifactsOption = Annotated[
    Path | None,
    typer.Option("--artifacts", help="Artifact folder. Default: $SELFLEARN_ARTIFACTS or the user data dir."),
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
        Path | None, typer.Option("--quarantine", help="Where rejected rows go. Default: <db>.quarantine.jsonl.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Validate and store logs; bad rows go to the quarantine file with the reason (never dropped)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from selflearn.ingest import IngestError, discover
    from selflearn.store import Store

    try:
        total = sum(p.stat().st_size for p in discover(sources))
    except IngestError as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    with (
        Store(db) as store,
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=err,
        ) as progress,
    ):
        task = progress.add_task("ingest", total=total)
        report = store.ingest(sources, quarantine=quarantine, on_progress=lambda n: progress.advance(task, n))
    if as_json:
        _print_json(report.to_dict())
        return
    err.print(
        f"read {report.read:,}  ingested {report.ingested:,}  duplicates {report.duplicates:,}  "
        f"quarantined {report.quarantined:,}  ({report.seconds:.2f}s; quarantine: {report.quarantine_file})"
    )


@app.command()
def forget(
    user: Annotated[str, typer.Argument(help="The user id whose data is deleted.")],
    db: DbOption = None,
    artifacts: ArtifactsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete everything about a user: turns, gold, feedback, preferences and personal artifacts."""
    from selflearn.artifacts import ArtifactStore
    from selflearn.store import Store

    with Store(db) as store:
        counts = store.forget(user)
    counts["artifact_files"] = ArtifactStore(artifacts).forget_user(user)
    if as_json:
        _print_json({"user_id": user, "deleted": counts})
        return
    err.print(f"forgot {user}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))


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
    from selflearn.artifacts import ArtifactError, ArtifactStore

    try:
        current = ArtifactStore(artifacts).rollback(version)
    except ArtifactError as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    if as_json:
        _print_json({"current": current})
        return
    err.print(f"now serving {current}")


@bench_app.command("ingest")
def bench_ingest(
    rows: Annotated[int, typer.Option("--rows", help="Turns per file format.")] = 200_000,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Ingest rows/s for Parquet and JSONL (with validation) vs raw DuckDB inserts without validation."""
    from selflearn.ingest_bench import ingest_bench

    result = ingest_bench(rows, seed=seed, log=err.print)
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
        Path | None, typer.Option("--artifacts", help="Artifact root. Default: $SELFLEARN_ARTIFACTS or the data dir.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Try the online rewriter on one utterance with the artifact set in service: the rewrite and its candidates."""
    from selflearn.artifacts import ArtifactStore
    from selflearn.home import load_home, shipped_homes
    from selflearn.rewrite.online import OnlineConfig, OnlineRewriter

    the_home = (
        load_home(home)
        if home.endswith((".yaml", ".yml"))
        else next((h for h in shipped_homes() if h.id == home), None)
    )
    if the_home is None:
        err.print(f"[red]error:[/red] unknown home {home!r}")
        raise typer.Exit(2)
    current = ArtifactStore(artifacts).current_dir()
    if current is None:
        err.print("[red]error:[/red] no artifact set yet: run `selflearn demo` or `selflearn learn` first")
        raise typer.Exit(2)
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


@bench_app.command("rewrite")
def bench_rewrite(
    sizes: Annotated[str, typer.Option("--sizes", help="Index sizes (forms), comma-separated.")] = "10000,100000",
    million: Annotated[bool, typer.Option("--million", help="Also 1M forms (~2 GB RAM, ~1 min to build).")] = False,
    queries: Annotated[int, typer.Option("--queries", help="Timed lookups per kind and size.")] = 300,
    utterances: Annotated[int, typer.Option("--utterances", help="Utterances for the runtime ratio.")] = 300,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Online rewrite lookup p50/p99 vs index size, and a runtime turn with rewriting vs without (same run)."""
    from selflearn.rewrite.bench import run_bench

    result = run_bench(
        [int(s) for s in sizes.split(",") if s] + ([1_000_000] if million else []),
        queries=queries,
        utterances=utterances,
        seed=seed,
        progress=err.print,
    )
    if as_json:
        _print_json(result)
        return
    from rich.table import Table

    table = Table(title="bench rewrite: online lookup (ms)")
    for col in ("forms", "build s", "exact p50", "exact p99", "unseen p50", "unseen p99"):
        table.add_column(col, justify="right")
    for row in result["lookup"]:
        table.add_row(
            f"{row['forms']:,}",
            f"{row['build_seconds']:.1f}",
            *(f"{row[k]:.3f}" for k in ("exact_p50_ms", "exact_p99_ms", "miss_p50_ms", "miss_p99_ms")),
        )
    out.print(table)
    out.print({k: v for k, v in result.items() if k != "lookup"})


@app.command()
def demo(
    seed: SeedOption = 0,
    turns: Annotated[int, typer.Option("--turns", help="Turns in the sample log.")] = 5_000,
) -> None:
    """Generate a seeded sample log with corruptions, ingest it, show what was stored and the ingest metrics."""
    import tempfile

    from rich.table import Table

    from selflearn import logsample
    from selflearn.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        err.print(f"generating {turns:,} turns (seed {seed}) with 2% corrupted rows ...")
        log = logsample.generate(turns, seed=seed)
        paths, jsonl_bad, parquet_bad = logsample.write_corrupted(log, root / "logs", rate=0.02, seed=seed)
        with Store(root / "demo.duckdb") as store:
            report = store.ingest(list(paths.values()))
            statuses = store.logs().sql(
                "SELECT result_status, count(*) AS turns, round(avg(barge_in::INT), 3) AS barge_in_rate "
                "FROM turns GROUP BY 1 ORDER BY 2 DESC"
            )
        counts = Table(title="ingest report")
        counts.add_column("rows")
        counts.add_column("count", justify="right")
        for name in ("read", "ingested", "duplicates", "quarantined"):
            counts.add_row(name, f"{getattr(report, name):,}")
        out.print(counts)
        injected = Table(title="injected corruptions")
        for col in ("kind", "jsonl", "parquet"):
            injected.add_column(col)
        for kind in sorted(set(jsonl_bad) | set(parquet_bad)):
            injected.add_row(kind, str(jsonl_bad.get(kind, 0)), str(parquet_bad.get(kind, 0)))
        out.print(injected)
        table = Table(title="stored turns by result status")
        for col in statuses.columns:
            table.add_column(col)
        for row in statuses.iter_rows():
            table.add_row(*(str(x) for x in row))
        out.print(table)
    result = evaluate.run("ingest", evaluate.EvalConfig(seed=seed, quick=True))
    metrics = Table(title=f"eval ingest --quick (seed {seed})")
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    for name, value in result.metrics.items():
        metrics.add_row(name, f"{value:g}")
    out.print(metrics)


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
        err.print(f"[red]error:[/red] {e}; pass --home H or --admin")
        raise typer.Exit(2) from e
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
def tokens_revoke(token_id: Annotated[str, typer.Argument(help="The id shown by `tokens list`.")]) -> None:
    """Revoke a token; a running service refuses it from the next request on."""
    from selflearn.tokens import Tokens

    if not Tokens().revoke(token_id):
        err.print(f"[red]error:[/red] no token {token_id!r}")
        raise typer.Exit(1)
    err.print(f"revoked {token_id}")


@prefs_app.command("list")
def prefs_list(
    user: Annotated[str, typer.Argument(help="User id.")], db: DbOption = None, as_json: JsonOption = False
) -> None:
    """List a user's preferences (stored in the log store, table `preferences`)."""
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
) -> None:
    """Set (add or replace) one preference of a user."""
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from selflearn.schema import Preference
    from selflearn.store import Store
    from selflearn.teach import TASTE_KINDS, vocabulary

    if kind in TASTE_KINDS:
        found = vocabulary().lookup(value, (kind,))
        if len(found) == 1:
            value = found[0][1]
    try:
        pref = Preference(user_id=user, kind=kind, key=key, value=value, scope=scope, ts=datetime.now(UTC))
    except ValidationError as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    with Store(db) as store:
        store.put_preference(pref)
    err.print(f"{user}: {kind} {key + ' ' if key else ''}= {value}")


@prefs_app.command("delete")
def prefs_delete(
    user: Annotated[str, typer.Argument(help="User id.")],
    kind: Annotated[str | None, typer.Option("--kind", help="Only this kind.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="Only this key.")] = None,
    db: DbOption = None,
) -> None:
    """Delete a user's preferences (all of them, or one kind / key)."""
    from selflearn.store import Store

    with Store(db) as store:
        n = store.delete_preferences(user, kind=kind, key=key)
    err.print(f"deleted {n} preference(s) of {user}")

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

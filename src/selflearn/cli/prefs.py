"""``selflearn prefs``: what users taught the assistant: list, set, delete."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from selflearn import ids

if TYPE_CHECKING:
    pass
from selflearn.cli.app import DbOption, JsonOption, _print_json, err, out

prefs_app = typer.Typer(help="What users taught the assistant (teams, food, music, names): list, set, delete.")


@prefs_app.command("list")
def prefs_list(
    user: Annotated[str, typer.Argument(help="User id.")], db: DbOption = None, as_json: JsonOption = False
) -> None:
    """List a user's preferences (stored in the log store, table `preferences`)."""
    ids.check(user, "user")
    from selflearn.store.logstore import Store

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
    from selflearn.store.logstore import Store
    from selflearn.teach.statements import TASTE_KINDS, vocabulary

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
    from selflearn.store.logstore import Store

    with Store(db) as store:
        n = store.delete_preferences(user, kind=kind, key=key)
    if as_json:
        _print_json({"user_id": user, "deleted": n})
        return
    err.print(f"deleted {n} preference(s) of {user}")

"""``selflearn tokens``: bearer tokens for ``selflearn serve`` (one per home, admin tokens)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from selflearn.errors import SelflearnError, UsageError

if TYPE_CHECKING:
    pass
from selflearn.cli.app import JsonOption, _print_json, err, out

tokens_app = typer.Typer(help="Bearer tokens for `selflearn serve`: one per home, admin tokens for learn.")


@tokens_app.command("create")
def tokens_create(
    home: Annotated[str | None, typer.Option("--home", help="The home this token reaches.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="An admin token (POST /v1/learn), for no home.")] = False,
    name: Annotated[str, typer.Option("--name", help="A note, e.g. which device uses it.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Create a token and print it once (only its SHA-256 hash is stored)."""
    from selflearn.service.tokens import Tokens

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

    from selflearn.service.tokens import Tokens

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
    from selflearn.service.tokens import Tokens

    if not Tokens().revoke(token_id):
        raise SelflearnError(f"no token {token_id!r}")
    if as_json:
        _print_json({"revoked": token_id})
        return
    err.print(f"revoked {token_id}")

"""``selflearn teach``: a user teaches the assistant a fact or a phrase."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from selflearn import ids
from selflearn.errors import SelflearnError

if TYPE_CHECKING:
    pass
from selflearn.cli.app import DbOption, JsonOption, out


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
    from selflearn.store.logstore import Store
    from selflearn.teach.teacher import Teacher

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

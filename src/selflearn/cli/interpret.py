"""``selflearn interpret``: one utterance (or ``--batch`` a file of them) through the runtime."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from selflearn import ids, progress
from selflearn.errors import UsageError

if TYPE_CHECKING:
    from selflearn.home import Endpoint, Home
    from selflearn.runtime.runtime import Runtime
    from selflearn.schema import Preference
from selflearn.cli.app import DbOption, JsonOption, _iso_time, out


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
    from selflearn.runtime.runtime import Runtime
    from selflearn.store.logstore import Store

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
        from selflearn.runtime.retrieval import Retrieval
        from selflearn.runtime.rewriter import LiveRewriter

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
    from selflearn.cli.batch import BatchError, parse_lines
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

"""``selflearn rewrite``: what the artifact set in service would rewrite an utterance to, and why."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from selflearn import ids
from selflearn.errors import NotFound

if TYPE_CHECKING:
    pass
from selflearn.cli.app import JsonOption, _print_json, out


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
    from selflearn.runtime.form_index import OnlineConfig
    from selflearn.runtime.rewriter import OnlineRewriter

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

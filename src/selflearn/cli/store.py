"""``selflearn ingest``, ``export`` and ``forget``: logs in, logs out as a Parquet dataset, a user out of everything."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from selflearn import ids, progress

if TYPE_CHECKING:
    pass
from selflearn.cli.app import ArtifactsOption, DbOption, JsonOption, _print_json, err


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

    from selflearn.store.ingest import discover
    from selflearn.store.logstore import Store

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
    from selflearn.forget import forget_user
    from selflearn.runtime.feedback import PendingRewrites, pending_root
    from selflearn.store.logstore import Store

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


def export(
    parquet: Annotated[Path, typer.Option("--parquet", file_okay=False, help="Root of the Parquet log dataset.")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write the store's logs (turns, feedback; never gold) as a Parquet dataset partitioned by day and home hash,
    which both engines (and any Spark cluster) read; appends to an existing dataset."""
    from selflearn.engines.dataset import write_dataset
    from selflearn.store.logstore import Store

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

"""``selflearn learn`` and ``selflearn fpi``: the nightly learning run, and failure points for a store."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from selflearn import progress

if TYPE_CHECKING:
    from selflearn.home import Home
    from selflearn.learners.learn import LearnConfig
    from selflearn.learners.mining import RewriteTables
    from selflearn.store.logview import LogView
from selflearn.cli.app import ArtifactsOption, DbOption, JsonOption, SeedOption, _print_json, err, out

logger = logging.getLogger(__name__)


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
    from selflearn.eval.fpi_report import fpi_report

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
    from selflearn.learners.learn import DEFAULT_LEARNERS, LEARNERS, LearnConfig, learn

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
    from selflearn.store.logstore import Store
    from selflearn.store.logview import LogView

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

"""``selflearn demo``: the whole cycle on a simulated world: use, log, learn each night, the falling curve."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from selflearn import progress

if TYPE_CHECKING:
    pass
from selflearn.cli.app import DbOption, JsonOption, PhrasingOption, RetrievalOption, SeedOption, _print_json, out

logger = logging.getLogger(__name__)


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
    from selflearn.eval.report import demo_cells, write_report
    from selflearn.sim import SimConfig, generate_homes
    from selflearn.sim.loop import DayStats, run_loop
    from selflearn.sim.run import add_log
    from selflearn.store.logstore import Store

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

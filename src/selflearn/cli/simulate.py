"""``selflearn simulate``: seeded simulated homes writing logs (and gold, apart) to a store or Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from selflearn import ids, progress

if TYPE_CHECKING:
    pass
from selflearn.cli.app import DbOption, JsonOption, PhrasingOption, SeedOption, _print_json, err, out


def simulate(
    homes: Annotated[int, typer.Option("--homes", min=1, help="Generated homes (seeded).")] = 10,
    days: Annotated[int, typer.Option("--days", min=1, help="Simulated days.")] = 1,
    seed: SeedOption = 0,
    out_dir: Annotated[
        Path,
        typer.Option("--out", file_okay=False, help="Folder for turns/gold/feedback Parquet and the homes (homes/)."),
    ] = Path("sim-out"),
    db: DbOption = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Only write Parquet, do not add to the store.")] = False,
    home: Annotated[
        Path | None, typer.Option("--home", exists=True, dir_okay=False, help="Simulate this home YAML instead.")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes (split by home; same records).")] = 1,
    phrasing: PhrasingOption = "templates",
    retrieval: Annotated[
        bool,
        typer.Option(
            "--retrieval/--no-retrieval",
            help="Fall back on retrieval over each home's own commands, as interpret does with nothing learned "
            "(each home's index built once, 10-20 s, then cached).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Simulate people living with the untrained assistant: Parquet logs + gold, added to the store; prints the
    defect rate and where it fails (from gold)."""
    from selflearn.home import dump_home, load_home
    from selflearn.sim import SimConfig, generate_homes
    from selflearn.sim.run import record, simulate, write_logs

    world = [load_home(home)] if home else generate_homes(homes, seed)
    config = SimConfig(phrasing=phrasing)
    with progress.bar() as bar:
        task = bar.add_task("simulate", total=len(world) * days)
        logs = simulate(
            world,
            days=days,
            seed=seed,
            config=config,
            workers=workers,
            on_home_day=lambda n: bar.advance(task, n),
            retrieval=retrieval,
        )
    paths = write_logs(logs, out_dir)
    (out_dir / "homes").mkdir(exist_ok=True)
    for simulated in world:  # the world beside its logs: `selflearn learn --home OUT/homes` abstracts over its names
        dump_home(simulated, ids.child_path(out_dir / "homes", f"{simulated.id}.yaml"))
    stats = record(logs, db, store=not no_store)
    if as_json:
        files = {k: str(p) for k, p in paths.items()}
        summary = {"homes": len(world), "days": days, "seed": seed, "phrasing": phrasing, "retrieval": retrieval}
        _print_json({**summary, **stats, "files": files})
        return
    from rich.table import Table

    table = Table(title=f"untrained assistant: {len(world)} homes x {days} days (seed {seed}; from gold)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in stats.items():
        table.add_row(name, f"{int(value):,}" if name == "turns" else f"{value:.1%}")
    out.print(table)
    stored = "" if no_store else " and added them to the store"
    err.print(f"wrote {', '.join(str(p) for p in paths.values())}{stored}")

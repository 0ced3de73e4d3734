"""``selflearn homes``: shipped homes, homes imported from Home Assistant, seeded random homes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from selflearn import ids
from selflearn.errors import UsageError

if TYPE_CHECKING:
    pass
from selflearn.cli.app import JsonOption, SeedOption, _print_json, out

homes_app = typer.Typer(help="Homes: the shipped ones, and seeded random homes to try any suite on (`--home FILE`).")


@homes_app.command("list")
def homes_list(as_json: JsonOption = False) -> None:
    """The shipped homes: id, areas, devices, endpoints, people."""
    from selflearn.home import shipped_homes

    rows = [
        {"id": h.id, "areas": len(h.areas), "devices": len(h.devices), "endpoints": len(h.endpoints),
         "people": len(h.people)}
        for h in shipped_homes()
    ]  # fmt: skip
    if as_json:
        _print_json({"homes": rows})
        return
    from rich.table import Table

    table = Table(title="shipped homes")
    for col in rows[0]:
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    out.print(table)


@homes_app.command("import-ha")
def homes_import_ha(
    out_file: Annotated[Path, typer.Option("--out", help="Home YAML to write.")],
    config_dir: Annotated[
        Path | None, typer.Argument(help="Home Assistant config directory (with .storage/); or use --url.")
    ] = None,
    home_id: Annotated[str, typer.Option("--home-id", help="Id of the imported home (slugged).")] = "home_assistant",
    url: Annotated[str | None, typer.Option("--url", help="A running Home Assistant: http://HOST:8123.")] = None,
    token: Annotated[
        str | None, typer.Option("--token", envvar="HA_TOKEN", help="Long-lived access token (or $HA_TOKEN).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Import the home HA's Assist sees (exposed entities, names, aliases, areas, floors) as a home YAML."""
    from selflearn.home import dump_home
    from selflearn.integrations.ha_import import fetch, read_config_dir, to_home

    if (config_dir is None) == (url is None) or (url is not None and not token):
        raise UsageError("give either CONFIG_DIR or --url URL --token TOKEN")
    config = read_config_dir(config_dir) if config_dir is not None else fetch(str(url), str(token))
    imported = to_home(config, home_id=home_id)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    dump_home(imported.home, out_file)
    if as_json:
        _print_json({**imported.to_json(), "out": str(out_file)})
        return
    home = imported.home
    counts = f"{len(home.areas)} areas, {len(home.devices)} devices, {len(home.endpoints)} endpoints"
    out.print(f"wrote {out_file}: {counts}")
    for skipped in imported.skipped:
        out.print(f"skipped {skipped.entity_id}: {skipped.reason}")


@homes_app.command("ha-fixtures")
def homes_ha_fixtures(
    config_dir: Annotated[Path, typer.Argument(help="Folder to write a Home Assistant .storage/ into.")],
    pad: Annotated[
        bool, typer.Option("--pad/--no-pad", help="Add the rest of a house (13 areas, 112 entities).")
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """HA's intent-test fixture home as HA registry files, for `homes import-ha` and `eval peer-ha --ha-config`."""
    import yaml

    from selflearn.eval.suites.peer_ha import TESTS_DIR
    from selflearn.integrations.ha_fixtures import fixture_config, merged, padding, write_config_dir

    fixtures = yaml.safe_load((TESTS_DIR / "_fixtures.yaml").read_text(encoding="utf-8"))
    config = merged(fixture_config(fixtures), padding()) if pad else fixture_config(fixtures)
    storage = write_config_dir(config, config_dir)
    if as_json:
        _print_json({"storage": str(storage), "areas": len(config.areas), "entities": len(config.entities)})
        return
    out.print(f"wrote {storage}: {len(config.areas)} areas, {len(config.entities)} entities")


@homes_app.command("generate")
def homes_generate(
    out_dir: Annotated[Path, typer.Option("--out", file_okay=False, help="Folder to write <home id>.yaml files into.")],
    count: Annotated[int, typer.Option("--count", min=1, help="How many homes.")] = 1,
    seed: SeedOption = 777,
    as_json: JsonOption = False,
) -> None:
    """Write seeded random homes as YAML (the simulator's generator): homes no developer tuned on, for `--home`."""
    from selflearn.home import dump_home
    from selflearn.sim import generate_homes

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for home in generate_homes(count, seed=seed):
        path = ids.child_path(out_dir, f"{home.id}.yaml")
        dump_home(home, path)
        written.append({"id": home.id, "path": str(path)})
    if as_json:
        _print_json({"homes": written})
        return
    for row in written:
        out.print(row["path"])

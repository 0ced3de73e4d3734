"""HA's test fixture home as registry files: HA's layout, a full house, and a home that answers like HA's own."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from selflearn.cli.main import app
from selflearn.eval import harness as evaluate
from selflearn.eval.suites.peer_ha import TESTS_DIR
from selflearn.integrations.ha_fixtures import fixture_config, merged, names, padding, write_config_dir
from selflearn.integrations.ha_import import DOMAINS, read_config_dir, to_home

FIXTURES = yaml.safe_load((TESTS_DIR / "_fixtures.yaml").read_text(encoding="utf-8"))
runner = CliRunner()


def test_written_as_ha_writes_its_stores(tmp_path: Path) -> None:
    storage = write_config_dir(merged(fixture_config(FIXTURES), padding()), tmp_path)
    for key in ("core.area_registry", "core.floor_registry", "core.device_registry", "core.entity_registry"):
        saved = json.loads((storage / key).read_text(encoding="utf-8"))
        assert (saved["version"], saved["key"]) == (1, key) and saved["minor_version"] >= 2
    entity = json.loads((storage / "core.entity_registry").read_text())["data"]["entities"][0]
    keys = {"entity_id", "original_name", "has_entity_name", "options", "aliases", "device_id", "area_id"}
    assert keys <= set(entity)
    config = read_config_dir(tmp_path)
    assert len(config.entities) >= 200 and len(config.areas) >= 20


def test_every_fixture_entity_of_a_known_domain_keeps_its_ha_name_area_and_class(tmp_path: Path) -> None:
    write_config_dir(merged(fixture_config(FIXTURES), padding()), tmp_path)
    home = to_home(read_config_dir(tmp_path)).home
    areas = {a.id: a.name for a in home.areas}
    fixture_areas = {a["id"]: a["name"] for a in FIXTURES["areas"]}
    by_name: dict[str, list[tuple[str | None, str | None]]] = {}
    for d in home.devices:
        by_name.setdefault(d.name, []).append((areas.get(d.area or ""), d.device_class))
    for e in FIXTURES["entities"]:
        if e["id"].split(".")[0] not in DOMAINS:
            continue
        want = (fixture_areas.get(e.get("area", "")), (e.get("attributes") or {}).get("device_class"))
        assert want in by_name[names(e["name"])[0]], e["id"]
    assert not home.endpoints  # no satellites: the CLI still answers, from no room
    home_file = tmp_path / "home.yaml"
    assert runner.invoke(app, ["homes", "import-ha", str(tmp_path), "--out", str(home_file)]).exit_code == 0
    said = runner.invoke(
        app,
        [
            "interpret",
            "close the hallway shades",
            "--home",
            str(home_file),
            "--json",
        ],
    )
    turn = json.loads(said.stdout)["turn"]
    assert (turn["nlu_slots"]["name"], turn["result_status"], turn["area"]) == ("cover.hallway_blinds", "success", None)
    padded = {d.name for d in home.devices}
    assert {"Hallway Ceiling Light", "Hallway Multisensor Motion", "Nursery Speaker"} <= padded
    assert "Hallway Multisensor Battery" not in padded and "Study Night Light" not in padded  # diagnostic, disabled


def test_peer_ha_on_the_imported_home_answers_like_on_has_own(tmp_path: Path) -> None:
    result = runner.invoke(app, ["homes", "ha-fixtures", str(tmp_path)])
    assert result.exit_code == 0 and "219 entities" in result.stdout
    imported = evaluate.run("peer-ha", evaluate.EvalConfig(quick=True, ha_config=tmp_path))
    own = evaluate.run("peer-ha", evaluate.EvalConfig(quick=True))
    assert imported.n == own.n and imported.metrics["imported_areas"] >= 20
    assert imported.metrics["pass_rate"] >= own.metrics["pass_rate"]
    bad = runner.invoke(app, ["eval", "peer-ha", "--quick", "--ha-config", str(tmp_path / "nowhere"), "--json"])
    assert bad.exit_code == 1 and "no .storage folder" in bad.output  # as `homes import-ha` says it

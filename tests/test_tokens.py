from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from selflearn.service.tokens import Tokens, tokens_file


def test_create_check_revoke(tmp_path: Path) -> None:
    tokens = Tokens(tmp_path / "tokens.json")
    token, info = tokens.create(home="maple_house", name="kitchen tablet")
    assert info.home == "maple_house" and not info.admin
    checked = tokens.check(token)
    assert checked is not None and checked.home == "maple_house"
    assert tokens.check(token + "x") is None and tokens.check("") is None
    assert [i.id for i in tokens.list()] == [info.id]
    assert tokens.revoke(info.id) and not tokens.revoke(info.id)
    assert tokens.check(token) is None


def test_only_hashes_are_stored(tmp_path: Path) -> None:
    tokens = Tokens(tmp_path / "tokens.json")
    token, _ = tokens.create(home="h1")
    raw = (tmp_path / "tokens.json").read_text()
    assert token not in raw and token[4:] not in raw
    assert stat.S_IMODE((tmp_path / "tokens.json").stat().st_mode) == 0o600
    assert set(json.loads(raw)[0]) == {"id", "home", "admin", "name", "created", "sha256"}


def test_admin_tokens_have_no_home(tmp_path: Path) -> None:
    tokens = Tokens(tmp_path / "tokens.json")
    _, admin = tokens.create(home=None, admin=True)
    assert admin.admin and admin.home is None
    with pytest.raises(ValueError):
        tokens.create(home="h1", admin=True)
    with pytest.raises(ValueError):
        tokens.create(home=None)


def test_default_file_is_in_the_data_dir(_isolated_data_dir: Path) -> None:
    assert tokens_file() == _isolated_data_dir / "tokens.json"
    Tokens().create(home="h1")
    assert tokens_file().exists()


def test_cli_tokens_and_prefs(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from selflearn.cli.main import app

    runner = CliRunner()
    created = runner.invoke(app, ["tokens", "create", "--home", "maple_house", "--json"])
    assert created.exit_code == 0, created.output
    info = json.loads(created.stdout)
    assert info["token"].startswith("slt_") and info["home"] == "maple_house"
    listed = json.loads(runner.invoke(app, ["tokens", "list", "--json"]).stdout)["tokens"]
    assert [t["id"] for t in listed] == [info["id"]] and "sha256" not in listed[0]
    assert runner.invoke(app, ["tokens", "create"]).exit_code == 2
    assert runner.invoke(app, ["tokens", "revoke", info["id"]]).exit_code == 0
    assert runner.invoke(app, ["tokens", "revoke", info["id"]]).exit_code == 1

    db = str(tmp_path / "logs.duckdb")
    assert runner.invoke(app, ["prefs", "set", "maple.ana", "team", "dubs", "--db", db]).exit_code == 0
    assert runner.invoke(app, ["prefs", "set", "maple.ana", "colour", "red", "--db", db]).exit_code == 2
    prefs = json.loads(runner.invoke(app, ["prefs", "list", "maple.ana", "--db", db, "--json"]).stdout)["preferences"]
    assert [(p["kind"], p["value"]) for p in prefs] == [("team", "Golden State Warriors")]
    assert runner.invoke(app, ["prefs", "delete", "maple.ana", "--kind", "team", "--db", db]).exit_code == 0
    assert (
        json.loads(runner.invoke(app, ["prefs", "list", "maple.ana", "--db", db, "--json"]).stdout)["preferences"] == []
    )

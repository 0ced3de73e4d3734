import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from selflearn.artifacts import ArtifactStore
from selflearn.cli.batch import BatchError, parse_lines
from selflearn.cli.main import app
from selflearn.runtime.rewrites import REWRITE_SCHEMA, empty_table, write_tables

runner = CliRunner()
WEATHER = "what's the weather in wilkerson"


def test_plain_and_json_lines_with_line_numbers() -> None:
    lines = [
        "turn on the kitchen lights",
        "",
        '{"text": "mute", "user": "u1", "device": "ep.x", "time": "2026-03-02T07:10"}',
    ]
    first, second = parse_lines(lines)
    assert (first.line, first.text, first.user, first.time) == (1, "turn on the kitchen lights", None, None)
    assert (second.line, second.user, second.device) == (3, "u1", "ep.x")
    assert second.time is not None and second.time.utcoffset() is not None  # naive times are UTC


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"text": "hi"', "f:2: not valid JSON"),
        ('{"txt": "hi"}', "f:2: text: Field required"),
        ('{"text": "hi", "time": "soon"}', "f:2: time:"),
        ('{"text": "   "}', "f:2: text: Value error, text is blank"),
        ('{"text": "hi", "line": 9}', "f:2: expected a JSON object"),
        ('{"text": "hi", "user": "../../etc"}', "f:2: user: Value error, id"),
        ('{"text": "hi", "device": "ep/x"}', "f:2: device: Value error, id"),
        ("[1, 2]", None),  # not starting with "{": the words themselves
    ],
)
def test_bad_lines_name_their_line(line: str, message: str | None) -> None:
    if message is None:
        assert parse_lines(["ok", line], "f")[1].text == line
        return
    with pytest.raises(BatchError) as e:
        parse_lines(["ok", line], "f")
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def _publish_personal_rule(root: Path) -> None:
    rule = {"source": "what's the weather in wilkerson", "target": "what's the weather in wilkerson california",
            "probability": 1.0, "support": 3, "distinct_users": 1, "source_intent": None,
            "target_intent": "HassGetWeather", "layer": "personal", "user_id": "maple.ana"}  # fmt: skip
    personal = pl.DataFrame([rule], schema=REWRITE_SCHEMA)
    ArtifactStore(root).publish(lambda d: write_tables(d, empty_table(), personal), meta={})


def test_batch_runs_every_line_like_interpret_with_the_artifact_set(tmp_path: Path) -> None:
    art = tmp_path / "art"
    _publish_personal_rule(art)
    requests = [
        json.dumps({"text": WEATHER, "user": "maple.ana"}),
        json.dumps({"text": WEATHER, "user": "maple.ben", "device": "ep.bedroom_speaker"}),
        "turn on the kitchen lights",
        "turn on the kitchen lights",
    ]
    batch = tmp_path / "requests.jsonl"
    batch.write_text("\n".join(requests) + "\n\n")
    common = ["--home", "maple_house", "--artifacts", str(art), "--time", "2026-03-02T18:00:00"]
    result = runner.invoke(app, ["interpret", "--batch", str(batch), *common])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3, 4]
    ana, ben, on, again = (r["turn"] for r in rows)
    assert ana["rewrite_source"] == "personal" and ana["rewritten_text"].endswith("california")
    assert ben["rewritten_text"] is None and ben["device_id"] == "ep.bedroom_speaker"
    # one runtime in order: the second request sees the light the first switched on, in the same session
    assert on["result_status"] == again["result_status"] == "success" and on["session_id"] == again["session_id"]
    assert on["device_state_snapshot"] != again["device_state_snapshot"]
    single = runner.invoke(app, ["interpret", WEATHER, "--user", "maple.ana", *common, "--json"])
    assert single.exit_code == 0, single.output
    alone = json.loads(single.stdout)["turn"]
    same = ("rewritten_text", "rewrite_source", "nlu_intent", "nlu_slots", "result_status", "response_text")
    assert {k: alone[k] for k in same} == {k: ana[k] for k in same}
    plain = runner.invoke(app, ["interpret", "--batch", str(batch), *common, "--no-rewrite"])
    assert json.loads(plain.stdout.splitlines()[0])["turn"]["rewritten_text"] is None


def test_batch_rejects_bad_input_before_running_anything(tmp_path: Path) -> None:
    batch = tmp_path / "b.txt"
    batch.write_text('turn on the kitchen lights\n{"text": "mute", "device": "ep.nowhere"}\n')
    result = runner.invoke(app, ["interpret", "--batch", str(batch)])
    assert result.exit_code == 2 and result.stdout == ""
    assert f"{batch}:2:" in result.stderr and "ep.nowhere" in result.stderr
    assert runner.invoke(app, ["interpret", "hi", "--batch", str(batch)]).exit_code == 2
    assert runner.invoke(app, ["interpret"]).exit_code == 2
    assert runner.invoke(app, ["interpret", "--batch", str(tmp_path / "missing.txt")]).exit_code == 2

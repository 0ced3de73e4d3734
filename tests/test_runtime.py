from __future__ import annotations

from datetime import UTC, datetime

from selflearn.home import Endpoint, Home, shipped_homes
from selflearn.runtime.rewrites import Rewrite
from selflearn.runtime.runtime import Interpretation, Runtime, TeachReply
from selflearn.schema import Preference, Turn

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def maple() -> Home:
    return next(h for h in shipped_homes() if h.id == "maple_house")


def say(rt: Runtime, text: str, ep: str = "ep.kitchen_speaker", user: str = "maple.ana") -> Interpretation:
    return rt.interpret(text, user_id=user, endpoint_id=ep, now=NOW)


def test_turn_is_logged_with_trace_of_every_stage() -> None:
    sunk: list[Turn] = []
    rt = Runtime(maple(), sink=sunk.append)
    out = say(rt, "turn on the kitchen light")
    assert sunk == [out.turn]
    assert out.turn.result_status == "success"
    assert rt.state["light.kitchen_ceiling"]["power"] is True
    assert {"nlu", "context", "er", "execute", "total"} <= set(out.turn.trace)
    assert out.turn.trace["nlu"]["top"][0]["intent"] == "HassTurnOn"
    assert out.turn.device_type == "speaker" and out.turn.area == "kitchen"
    assert 0.0 < out.turn.nlu_confidence <= 1.0


def test_no_match_and_no_entity_are_explicit() -> None:
    rt = Runtime(maple())
    assert say(rt, "xyzzy plugh").turn.result_status == "no_match"
    assert say(rt, "turn on the blender").turn.result_status == "no_entity"


def test_rewriter_output_is_what_nlu_sees() -> None:
    class Fixed:
        def rewrite(self, text: str, *, user_id: str, home: Home, endpoint: Endpoint, now: datetime) -> Rewrite | None:
            return Rewrite("turn on the desk lamp", "global", 0.9) if text == "turn on the desk lump" else None

    rt = Runtime(maple(), rewriter=Fixed())
    out = say(rt, "turn on the desk lump")
    assert out.turn.rewritten_text == "turn on the desk lamp"
    assert out.turn.rewrite_source == "global"
    assert rt.state["light.office_desk"]["power"] is True


def test_teacher_first_look_logs_feedback_turn() -> None:
    seen: list[Turn | None] = []

    class Teach:
        def handle(
            self, text: str, *, user_id: str, home: Home, now: datetime, last_turn: Turn | None
        ) -> TeachReply | None:
            seen.append(last_turn)
            return TeachReply("Thanks!", "feedback", "no") if text == "no that's wrong" else None

    rt = Runtime(maple(), teacher=Teach())
    first = say(rt, "turn on the kitchen light")
    out = say(rt, "no that's wrong")
    assert out.turn.result_status == "feedback" and out.turn.explicit_feedback == "no"
    assert out.response == "Thanks!"
    assert seen == [None, first.turn]


def test_feedback_policy_is_asked_and_changes_the_response() -> None:
    class Always:
        def should_ask(self, *, user_id: str, now: datetime, confidence: float, rewritten: bool) -> bool:
            return True

    out = say(Runtime(maple(), feedback_policy=Always()), "turn on the kitchen light")
    assert out.asks_feedback and out.response.endswith("?")


def test_taught_phrase_and_alias_expand_before_nlu() -> None:
    prefs = [
        Preference(
            user_id="maple.ana", kind="phrase", key="wake up the kitchen", value="turn on the kitchen light", ts=NOW
        ),
        Preference(user_id="maple.ana", kind="device_alias", key="big light", value="light.living_ceiling", ts=NOW),
    ]
    rt = Runtime(maple(), preferences=lambda user: prefs if user == "maple.ana" else [])
    out = say(rt, "wake up the kitchen")
    assert out.turn.rewrite_source == "teach" and rt.state["light.kitchen_ceiling"]["power"] is True
    say(rt, "turn on the big light")
    assert rt.state["light.living_ceiling"]["power"] is True
    assert say(rt, "turn on the big light", user="maple.ben").turn.result_status == "no_entity"


def test_dialogue_ids_split_on_silence() -> None:
    rt = Runtime(maple())
    a = rt.interpret("turn on the kitchen light", user_id="u", endpoint_id="ep.kitchen_speaker", now=NOW)
    b = rt.interpret(
        "turn off the kitchen light", user_id="u", endpoint_id="ep.kitchen_speaker", now=NOW.replace(second=10)
    )
    c = rt.interpret(
        "turn on the kitchen light", user_id="u", endpoint_id="ep.kitchen_speaker", now=NOW.replace(minute=10)
    )
    assert a.turn.dialogue_id == b.turn.dialogue_id != c.turn.dialogue_id
    assert a.turn.session_id == c.turn.session_id
    assert len({a.turn.turn_id, b.turn.turn_id, c.turn.turn_id}) == 3


def test_cli_interpret_json_and_unseen_home(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from typer.testing import CliRunner

    from selflearn.cli.main import app
    from selflearn.home import dump_home

    path = tmp_path / "h.yaml"
    dump_home(maple().model_copy(update={"id": "unseen"}), path)
    args = ["interpret", "turn on the lights", "--home", str(path), "--device", "ep.bedroom_speaker", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    turn = json.loads(result.stdout)["turn"]
    assert turn["home_id"] == "unseen" and turn["result_status"] == "success"
    assert {"nlu", "context", "er", "execute"} <= set(turn["trace"])
    assert CliRunner().invoke(app, ["interpret", "hi", "--home", "nosuch"]).exit_code == 2


def test_bench_utterances_cover_homes() -> None:
    from selflearn.bench import interpret as bench

    report = bench.run([maple()], per_intent=1, repeats=1)
    assert report["utterances"] > 40 and report["pipeline_median_ms"] > 0 and report["ratio_median"] > 0


def test_taught_phrase_with_several_requests_runs_them_all() -> None:
    movie = Preference(
        user_id="maple.ana",
        kind="phrase",
        key="movie night",
        value="turn off the living room light | close the blinds",
        ts=NOW,
    )
    rt = Runtime(maple(), preferences=lambda user: [movie])
    rt.state["light.living_ceiling"]["power"] = True
    out = say(rt, "movie night", ep="ep.living_screen")
    assert out.turn.result_status == "success"
    assert rt.state["light.living_ceiling"]["power"] is False and rt.state["cover.living_blinds"]["position"] == 0
    assert out.turn.trace["parts"]["intents"] == ["HassTurnOff", "HassTurnOff"]


def test_preferences_scoped_to_another_home_are_ignored() -> None:
    other = Preference(
        user_id="maple.ana", kind="phrase", key="wake up", value="turn on the kitchen light", scope="elsewhere", ts=NOW
    )
    rt = Runtime(maple(), preferences=lambda user: [other])
    assert say(rt, "wake up").turn.result_status != "success"


def test_cli_interpret_uses_the_speakers_taught_preferences() -> None:
    import json

    from typer.testing import CliRunner

    from selflearn.cli.main import app
    from selflearn.store.logstore import Store

    args = ["interpret", "turn on the game", "--device", "ep.living_screen", "--user", "maple.ben", "--json"]
    before = json.loads(CliRunner().invoke(app, args).stdout)["turn"]["nlu_slots"]
    with Store() as store:
        store.put_preference(Preference(user_id="maple.ben", kind="team", value="Boston Celtics", ts=NOW))
    after = json.loads(CliRunner().invoke(app, args).stdout)["turn"]["nlu_slots"]
    assert before == {"team": "Los Angeles Lakers"} and after == {"team": "Boston Celtics"}


def test_default_turn_ids_differ_across_runtimes() -> None:
    a, b = Runtime(maple()), Runtime(maple())
    assert say(a, "turn on the kitchen light").turn.turn_id != say(b, "turn on the kitchen light").turn.turn_id

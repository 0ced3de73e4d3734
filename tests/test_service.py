from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from selflearn.home import Home, Person, shipped_homes
from selflearn.runtime.rewrites import REWRITE_SCHEMA, empty_table, write_tables
from selflearn.schema import Turn
from selflearn.service.app import create_app
from selflearn.service.middleware import MAX_BODY_BYTES
from selflearn.service.service import Service
from selflearn.service.tokens import Tokens

T0 = "2026-11-25T18:00:00Z"
EARLIEST_EAST = "2000-01-01T00:00:00+13:59"  # 1999 in UTC: outside the records' range (was a 500)
LATEST_WEST = "2099-12-31T23:59:59-13:59"  # 2100 in UTC


def _homes() -> list[Home]:
    maple = next(h for h in shipped_homes() if h.id == "maple_house")
    oak = maple.model_copy(
        update={
            "id": "oak_house",
            "people": [Person(id="oak.zoe", name="Zoe", endpoints=["ep.kitchen_speaker"])],
        }
    )
    return [maple, oak]


def _env(tmp_path: Path) -> Iterator[dict[str, Any]]:
    tokens = Tokens(tmp_path / "tokens.json")
    maple, _ = tokens.create(home="maple_house")
    oak, _ = tokens.create(home="oak_house")
    admin, _ = tokens.create(home=None, admin=True)
    service = Service(_homes(), db=tmp_path / "logs.duckdb", artifacts=tmp_path / "artifacts", tokens=tokens)
    client = TestClient(create_app(service), raise_server_exceptions=False)
    yield {
        "client": client,
        "service": service,
        "tokens": tokens,
        "maple": {"Authorization": f"Bearer {maple}"},
        "oak": {"Authorization": f"Bearer {oak}"},
        "admin": {"Authorization": f"Bearer {admin}"},
    }
    service.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, Any]]:
    yield from _env(tmp_path)


@pytest.fixture(scope="module")
def env_once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One service for a whole property test (hypothesis runs many examples in one test call)."""
    yield from _env(tmp_path_factory.mktemp("service"))


def say(env: dict[str, Any], text: str, user: str = "maple.ana", who: str = "maple", **extra: Any) -> Any:
    body = {"text": text, "user_id": user, "device_id": "ep.kitchen_speaker", "time": T0, **extra}
    return env["client"].post("/v1/interpret", json=body, headers=env[who])


def test_healthz_and_metrics(env: dict[str, Any]) -> None:
    c = env["client"]
    assert c.get("/healthz").json()["status"] == "ok"
    say(env, "turn on the kitchen light")
    text = c.get("/metrics").text
    assert 'selflearn_requests_total{method="POST",route="/v1/interpret",status="200"} 1' in text
    assert "selflearn_request_duration_ms_bucket" in text and 'event="turn_success"' in text


def test_interpret_returns_response_and_trace(env: dict[str, Any]) -> None:
    r = say(env, "turn on the kitchen light")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["turn"]["result_status"] == "success" and body["turn"]["user_id"] == "maple.ana"
    assert "nlu" in body["turn"]["trace"] and body["response"]
    env["service"].flush()
    assert env["service"].store.logs().turns(user_id="maple.ana").height == 1


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer nope"}, 401), ({"Authorization": "Basic abc"}, 401)],
)
def test_auth_required(env: dict[str, Any], headers: dict[str, str], status: int) -> None:
    body = {"text": "hi", "user_id": "maple.ana", "device_id": "ep.kitchen_speaker"}
    r = env["client"].post("/v1/interpret", json=body, headers=headers)
    assert r.status_code == status and r.json()["error"]["code"] == status


def test_admin_token_cannot_act_for_users_and_home_token_cannot_learn(env: dict[str, Any]) -> None:
    assert say(env, "hello", who="admin").status_code == 403
    assert env["client"].post("/v1/learn", headers=env["maple"]).status_code == 403


def test_revoked_token_is_refused_at_once(env: dict[str, Any]) -> None:
    info = next(i for i in env["tokens"].list() if i.home == "maple_house")
    assert say(env, "turn on the tv").status_code == 200
    env["tokens"].revoke(info.id)
    assert say(env, "turn on the tv").status_code == 401


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"text": "hi", "user_id": "nobody", "device_id": "ep.kitchen_speaker"}, 404),
        ({"text": "hi", "user_id": "maple.ana", "device_id": "ep.garage"}, 404),
        ({"text": 5, "user_id": "maple.ana", "device_id": "ep.kitchen_speaker"}, 422),
        ({"text": "", "user_id": "maple.ana", "device_id": "ep.kitchen_speaker"}, 422),
        ({"text": "hi", "user_id": "maple.ana", "device_id": "ep.kitchen_speaker", "time": "2026-11-25T18:00"}, 422),
        ({"text": "hi", "user_id": "maple.ana", "device_id": "ep.kitchen_speaker", "time": "1970-01-01T00:00Z"}, 422),
        ({"text": "hi", "user_id": "maple.ana", "device_id": "ep.kitchen_speaker", "time": EARLIEST_EAST}, 422),
        ({"text": "hi", "user_id": "maple.ana", "device_id": "ep.kitchen_speaker", "time": LATEST_WEST}, 422),
        ({"text": "hi", "user_id": "../etc", "device_id": "ep.kitchen_speaker"}, 422),
        ({"text": "hi", "user_id": "maple.ana", "device_id": "ep.kitchen_speaker", "admin": True}, 422),
        ({"user_id": "maple.ana"}, 422),
        ([1, 2], 422),
    ],
)
def test_bad_input_is_a_clear_4xx(env: dict[str, Any], body: Any, status: int) -> None:
    r = env["client"].post("/v1/interpret", json=body, headers=env["maple"])
    assert r.status_code == status, r.text
    assert r.json()["error"]["message"]


def test_edge_times_and_long_phrases_are_answered_not_500(env: dict[str, Any]) -> None:
    c, h = env["client"], env["maple"]
    turn_id = say(env, "turn on the tv").json()["turn"]["turn_id"]
    for edge in (EARLIEST_EAST, LATEST_WEST):
        for path, body in (
            ("/v1/teach", {"user_id": "maple.ana", "text": "I'm a Warriors fan", "time": edge}),
            ("/v1/feedback", {"user_id": "maple.ana", "turn_id": turn_id, "answer": "yes", "time": edge}),
        ):
            r = c.post(path, json=body, headers=h)
            assert r.status_code == 422 and "body.time: expected ISO 8601" in r.json()["error"]["message"], r.text
    for inside in ("2000-01-01T00:00:00Z", "2000-01-01T05:00:00-13:59", "2099-12-31T23:59:59+13:59"):
        assert say(env, "turn on the tv", time=inside).status_code == 200
    long = {"user_id": "maple.ana", "text": "when I say " + "x" * 250 + " I mean turn on the tv"}
    r = c.post("/v1/teach", json=long, headers=h)
    assert r.status_code == 200 and "too long" in r.json()["response"] and r.json()["preferences"] == []


def test_oversize_and_non_utf8_bodies(env: dict[str, Any]) -> None:
    c = env["client"]
    headers = {**env["maple"], "Content-Type": "application/json"}
    big = b'{"text": "' + b"a" * MAX_BODY_BYTES + b'"}'
    assert c.post("/v1/interpret", content=big, headers=headers).status_code == 413

    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(MAX_BODY_BYTES // 1000 + 2):
            yield b"a" * 1000
        yield b'"}'

    assert c.post("/v1/interpret", content=chunks(), headers=headers).status_code == 413
    bad = b'{"text": "\xff\xfe", "user_id": "maple.ana", "device_id": "ep.kitchen_speaker"}'
    r = c.post("/v1/interpret", content=bad, headers=headers)
    assert 400 <= r.status_code < 500 and r.json()["error"]["message"]
    assert c.post("/v1/interpret", content=b"{not json", headers=headers).status_code in (400, 422)


def test_teach_then_the_next_request_uses_it(env: dict[str, Any]) -> None:
    c = env["client"]
    r = c.post("/v1/teach", json={"user_id": "maple.ben", "text": "I'm a Warriors fan"}, headers=env["maple"])
    assert r.status_code == 200 and r.json()["understood"]
    assert r.json()["preferences"][0]["value"] == "Golden State Warriors"
    game = say(env, "turn on the game", user="maple.ben").json()["turn"]
    assert game["nlu_slots"]["team"] == "Golden State Warriors"
    not_teach = c.post("/v1/teach", json={"user_id": "maple.ben", "text": "turn on the tv"}, headers=env["maple"])
    assert not_teach.status_code == 200 and not not_teach.json()["understood"]


def test_teaching_by_voice_through_interpret(env: dict[str, Any]) -> None:
    assert say(env, "I like Mexican food", user="maple.ben").json()["turn"]["result_status"] == "teach"
    assert say(env, "find a restaurant", user="maple.ben").json()["turn"]["nlu_slots"]["cuisine"] == "Mexican"


def test_preferences_crud(env: dict[str, Any]) -> None:
    c, h = env["client"], env["maple"]
    put = c.put("/v1/users/maple.ana/preferences", json={"kind": "cuisine", "value": "sushi"}, headers=h)
    assert put.status_code == 200 and put.json()["value"] == "Japanese"
    assert [p["value"] for p in c.get("/v1/users/maple.ana/preferences", headers=h).json()] == ["Japanese"]
    assert c.put("/v1/users/maple.ana/preferences", json={"kind": "colour", "value": "x"}, headers=h).status_code == 422
    assert c.delete("/v1/users/maple.ana/preferences?kind=team", headers=h).json() == {"deleted": 0}
    assert c.delete("/v1/users/maple.ana/preferences", headers=h).json() == {"deleted": 1}
    assert c.get("/v1/users/maple.ana/preferences", headers=h).json() == []


def test_edit_a_taught_preference_only_in_its_own_home(env: dict[str, Any]) -> None:
    c, maple, oak = env["client"], env["maple"], env["oak"]
    taught = c.post("/v1/teach", json={"user_id": "maple.ana", "text": "I like Thai food"}, headers=maple).json()
    assert [(p["kind"], p["value"], p["source"]) for p in taught["preferences"]] == [("cuisine", "Thai", "statement")]
    edit = {"kind": "cuisine", "value": "sushi"}
    assert c.patch("/v1/users/maple.ana/preferences", json=edit, headers=oak).status_code == 404  # not its home
    assert c.patch("/v1/users/maple.ana/preferences", json=edit | {"kind": "team"}, headers=maple).status_code == 404
    elsewhere = edit | {"scope": "oak_house"}
    assert c.patch("/v1/users/maple.ana/preferences", json=elsewhere, headers=maple).status_code == 404
    assert c.patch("/v1/users/maple.ana/preferences", json=edit | {"value": ""}, headers=maple).status_code == 422
    r = c.patch("/v1/users/maple.ana/preferences", json=edit, headers=maple)
    assert r.status_code == 200 and r.json()["value"] == "Japanese" and r.json()["source"] == "statement"
    prefs = c.get("/v1/users/maple.ana/preferences", headers=maple).json()
    assert [(p["kind"], p["key"], p["value"], p["scope"]) for p in prefs] == [("cuisine", "", "Japanese", "*")]


def test_no_endpoint_reaches_another_homes_user(env: dict[str, Any]) -> None:
    c, maple, oak = env["client"], env["maple"], env["oak"]
    c.put("/v1/users/maple.ana/preferences", json={"kind": "team", "value": "Warriors"}, headers=maple)
    turn_id = say(env, "turn on the kitchen light").json()["turn"]["turn_id"]
    attempts = [
        c.get("/v1/users/maple.ana/preferences", headers=oak),
        c.put("/v1/users/maple.ana/preferences", json={"kind": "team", "value": "Lakers"}, headers=oak),
        c.patch("/v1/users/maple.ana/preferences", json={"kind": "team", "value": "Lakers"}, headers=oak),
        c.delete("/v1/users/maple.ana/preferences", headers=oak),
        c.delete("/v1/users/maple.ana", headers=oak),
        c.post("/v1/teach", json={"user_id": "maple.ana", "text": "I like Thai food"}, headers=oak),
        c.post("/v1/feedback", json={"user_id": "maple.ana", "turn_id": turn_id, "answer": "no"}, headers=oak),
        c.post("/v1/feedback", json={"user_id": "oak.zoe", "turn_id": turn_id, "answer": "no"}, headers=oak),
        say(env, "turn on the kitchen light", user="maple.ana", who="oak"),
        say(env, "turn on the kitchen light", user="oak.zoe", who="maple"),
    ]
    assert [r.status_code for r in attempts] == [404] * len(attempts)
    prefs = c.get("/v1/users/maple.ana/preferences", headers=maple).json()
    assert [(p["kind"], p["value"]) for p in prefs] == [("team", "Golden State Warriors")]


def test_feedback_on_own_turn_and_correction_rewrites_next_request(env: dict[str, Any]) -> None:
    c, h = env["client"], env["maple"]
    turn = say(env, "switch on the cooking light").json()["turn"]
    other = {"user_id": "maple.ben", "turn_id": turn["turn_id"], "answer": "yes"}
    assert c.post("/v1/feedback", json=other, headers=h).status_code == 404
    assert (
        c.post("/v1/feedback", json={**other, "user_id": "maple.ana", "answer": "correction"}, headers=h).status_code
        == 422
    )
    fix = {**other, "user_id": "maple.ana", "answer": "correction", "correction_text": "turn on the kitchen light"}
    r = c.post("/v1/feedback", json=fix, headers=h)
    assert r.status_code == 200 and r.json()["kind"] == "correction"
    again = say(env, "switch on the cooking light").json()["turn"]
    assert again["rewrite_source"] == "feedback" and again["rewritten_text"] == "turn on the kitchen light"
    assert say(env, "switch on the cooking light", user="maple.ben").json()["turn"]["rewrite_source"] != "feedback"
    env["service"].flush()
    assert env["service"].store.logs().feedback(user_id="maple.ana").height == 1


def test_forget_user_is_verified_and_leaves_others(env: dict[str, Any]) -> None:
    c, h, service = env["client"], env["maple"], env["service"]
    for user in ("maple.ana", "maple.ben"):
        turn = say(env, "switch on the cooking light", user=user).json()["turn"]
        fix = {"user_id": user, "turn_id": turn["turn_id"], "answer": "correction", "correction_text": "turn on the tv"}
        assert c.post("/v1/feedback", json=fix, headers=h).status_code == 200
        c.post("/v1/teach", json={"user_id": user, "text": "I like jazz music"}, headers=h)
    r = c.delete("/v1/users/maple.ana", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verified"] and body["deleted"]["turns"] == 1 and body["deleted"]["pending_rewrites"] == 1
    assert body["deleted"]["preferences"] == 1
    assert c.get("/v1/users/maple.ana/preferences", headers=h).json() == []
    assert service.store.logs().turns(user_id="maple.ana").height == 0
    assert all("maple.ana" not in rt._last for rt in service.runtimes.values())
    assert not (service.pending.root / "personal" / "maple.ana").exists()  # type: ignore[operator]
    assert service.store.logs().turns(user_id="maple.ben").height == 1
    assert len(c.get("/v1/users/maple.ben/preferences", headers=h).json()) == 1
    assert service.pending.get("maple.ben", "switch on the cooking light") is not None


def test_after_forget_the_personal_rewrite_no_longer_fires(env: dict[str, Any]) -> None:
    c, h, service = env["client"], env["maple"], env["service"]
    rule = {"source": "switch on the cooking light", "target": "turn on the kitchen light", "probability": 1.0}
    rule |= {"support": 3, "distinct_users": 1, "source_intent": None, "target_intent": "HassTurnOn"}
    rows = [rule | {"layer": "personal", "user_id": "maple.ana"}]
    rows.append(rule | {"source": "cooking light on", "layer": "personal", "user_id": "maple.ana.jr"})  # a prefix
    personal = pl.DataFrame(rows, schema=REWRITE_SCHEMA)

    def build(root: Path) -> None:
        write_tables(root, empty_table(), personal)

    service.artifacts.publish(build, meta={})
    service.rewriter.reload_if_changed()
    assert say(env, "switch on the cooking light").json()["turn"]["rewrite_source"] == "personal"  # layer in memory
    encoder = service.rewriter.current.encoder
    encoder.encode_one("switch on the cooking light")  # as a near-variant query would have cached it
    service.flush()
    r = c.delete("/v1/users/maple.ana", headers=h)
    assert r.status_code == 200 and r.json()["verified"], r.text
    assert "switch on the cooking light" not in encoder._cache
    assert say(env, "switch on the cooking light").json()["turn"]["rewrite_source"] == "none"  # the very next turn
    current = service.artifacts.current_dir()
    assert current is not None and (current / "personal" / "maple.ana.jr").is_dir()  # no prefix match


@pytest.mark.parametrize("hostile", ["..", "..%2F..%2Fetc", "x%2F..%2Fmaple.ben", ".hidden", "a%00b", "x" * 129])
def test_hostile_user_ids_get_a_4xx_and_nothing_is_deleted(env: dict[str, Any], hostile: str) -> None:
    say(env, "turn on the kitchen light")
    r = env["client"].delete(f"/v1/users/{hostile}", headers=env["maple"])
    assert 400 <= r.status_code < 500, r.text
    body = {"text": "hi", "user_id": hostile.replace("%2F", "/"), "device_id": "ep.kitchen_speaker"}
    assert env["client"].post("/v1/interpret", json=body, headers=env["maple"]).status_code == 422
    env["service"].flush()
    assert env["service"].store.user_rows("maple.ana")["turns"] == 1


def test_admin_learn_publishes_and_the_service_picks_it_up(env: dict[str, Any]) -> None:
    c = env["client"]
    for text in ("switch on the cooking light", "turn on the kitchen light") * 3:
        say(env, text)
    assert c.get("/healthz").json()["artifacts"] is None
    r = c.post("/v1/learn", headers=env["admin"])
    assert r.status_code == 200, r.text
    version = r.json()["version"]
    assert version and c.get("/healthz").json()["artifacts"] == version
    assert env["service"].rewriter.current.artifact_dir.name == version
    assert f'selflearn_artifact_info{{version="{version}"}} 1' in c.get("/metrics").text


def test_a_forget_during_learn_removes_what_that_learn_publishes(
    env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import selflearn.learners.learn

    started, release = threading.Event(), threading.Event()
    personal = pl.DataFrame(
        [{"source": "cooking light", "target": "kitchen light", "layer": "personal", "user_id": "maple.ana"}],
        schema=REWRITE_SCHEMA,
    )

    def slow_learn(logs: Any, artifacts: Any, **_: Any) -> dict[str, int]:  # its snapshot still held maple.ana
        started.set()
        release.wait(10)
        artifacts.publish(lambda root: write_tables(root, empty_table(), personal) and None, meta={})
        return {}

    monkeypatch.setattr(selflearn.learners.learn, "learn", slow_learn)
    say(env, "switch on the cooking light")
    c = env["client"]
    learned = threading.Thread(target=lambda: c.post("/v1/learn", headers=env["admin"]))
    learned.start()
    assert started.wait(10)
    answers: list[Any] = []
    forgot = threading.Thread(target=lambda: answers.append(c.delete("/v1/users/maple.ana", headers=env["maple"])))
    forgot.start()
    forgot.join(5)  # unblocked, a forget here takes about a second
    assert forgot.is_alive()  # it waits for the learn to publish
    release.set()
    learned.join(10)
    forgot.join(30)
    assert answers[0].status_code == 200 and answers[0].json()["verified"], answers[0].text
    current = env["service"].artifacts.current_dir()
    assert current is not None and not (current / "personal" / "maple.ana").exists()


def test_admin_learn_on_no_logs_publishes_nothing(env: dict[str, Any]) -> None:
    r = env["client"].post("/v1/learn", headers=env["admin"])
    assert r.status_code == 409 and "no turns to learn from" in r.json()["error"]["message"]
    assert env["client"].get("/healthz").json()["artifacts"] is None


def test_openapi_documents_the_endpoints(env: dict[str, Any]) -> None:
    spec = env["client"].get("/openapi.json").json()
    for path in (
        "/v1/interpret",
        "/v1/conversation",
        "/v1/conversation/result",
        "/v1/feedback",
        "/v1/teach",
        "/v1/users/{user_id}/preferences",
        "/v1/users/{user_id}",
    ):
        assert path in spec["paths"]


@pytest.fixture
def fuzz_target(env: dict[str, Any]) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", env["client"].app)


fuzz_schema = schemathesis.pytest.from_fixture("fuzz_target")
QUIET = list(HealthCheck)


@fuzz_schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=QUIET)
def test_fuzz_openapi_never_500(case: Any, env: dict[str, Any]) -> None:
    """Every response conforms to the schema, no 5xx, schema-valid input accepted, invalid input rejected."""
    case.call_and_validate(headers=env["maple"])


FUZZ_CASES = 3000  # in total, over every operation
FUZZ_PER_OPERATION = 480  # hypothesis's bound; operations without inputs run out of distinct cases after a few


def _use_real_ids(case: Any, real: dict[str, str]) -> None:
    """Put a real person, device and turn where the case has those fields: random ids end at the user lookup's 404."""
    for where in (case.body, case.path_parameters):
        if isinstance(where, dict):
            where.update({k: v for k, v in real.items() if k in where})


@pytest.mark.slow
def test_fuzz_openapi_no_5xx_in_3000_cases(env: dict[str, Any]) -> None:
    """Schemathesis cases for every operation of the OpenAPI schema, valid and invalid ones, half of them with the ids
    of a real person, device and turn so they reach the runtime, teacher and store: no answer is a 5xx."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", env["client"].app)
    turn_id = say(env, "turn on the tv").json()["turn"]["turn_id"]
    real = {"user_id": "maple.ana", "device_id": "ep.kitchen_speaker", "turn_id": turn_id}
    cases: Counter[str] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)

        @settings(max_examples=FUZZ_PER_OPERATION, deadline=None, suppress_health_check=QUIET, database=None)
        @given(case=strategy, use_real=st.booleans())
        def no_5xx(case: Any, use_real: bool) -> None:
            if use_real:
                _use_real_ids(case, real)
            response = case.call(headers=env["maple"])
            cases[case.operation.label] += 1
            assert response.status_code < 500, (case.body, case.path_parameters, case.query, response.text)

        no_5xx()
    print(f"{sum(cases.values())} schemathesis cases, none a 5xx: {dict(cases)}")  # the README's number (-rP)
    assert sum(cases.values()) >= FUZZ_CASES, cases


@settings(max_examples=40, deadline=None, suppress_health_check=QUIET)
@given(text=st.text(min_size=1, max_size=300), teach=st.booleans())
def test_any_text_from_a_real_user_is_answered(env_once: dict[str, Any], text: str, teach: bool) -> None:
    """Real user and device, arbitrary text (control characters, emoji, surrogate-free unicode): never a 5xx."""
    if teach:
        r = env_once["client"].post("/v1/teach", json={"user_id": "maple.ben", "text": text}, headers=env_once["maple"])
    else:
        r = say(env_once, text, user="maple.ben")
    assert r.status_code in (200, 422), r.text


def test_feedback_ids_fit_the_schema_for_the_longest_turn_ids(env: dict[str, Any]) -> None:
    c, h, service = env["client"], env["maple"], env["service"]
    turn = Turn.model_validate({**say(env, "turn on the tv").json()["turn"], "turn_id": "t" * 128})
    service.store.add(turns=[turn])
    ok = c.post("/v1/feedback", json={"user_id": "maple.ana", "turn_id": turn.turn_id, "answer": "yes"}, headers=h)
    assert ok.status_code == 200 and len(ok.json()["feedback_id"]) <= 128


def test_an_artifact_set_published_elsewhere_is_picked_up_without_restart(tmp_path: Path) -> None:
    from selflearn.artifacts import ArtifactStore
    from selflearn.runtime.rewriter import LiveRewriter

    store = ArtifactStore(tmp_path / "artifacts")
    rewriter = LiveRewriter(store, check_seconds=0.0)
    tokens = Tokens(tmp_path / "tokens.json")
    token, _ = tokens.create(home="maple_house")
    service = Service(
        _homes(), db=tmp_path / "db.duckdb", artifacts=tmp_path / "artifacts", tokens=tokens, rewriter=rewriter
    )
    client = TestClient(create_app(service))
    try:
        body = {"text": "turn on the tv", "user_id": "maple.ana", "device_id": "ep.living_screen"}
        assert client.post("/v1/interpret", json=body, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert rewriter.current is None
        version = store.publish(lambda d: None, meta={"by": "another process"})
        assert client.post("/v1/interpret", json=body, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert rewriter.current is not None and rewriter.current.artifact_dir == store.current_dir()
        assert client.get("/healthz").json()["artifacts"] == version
    finally:
        service.close()


def test_conversation_takes_home_assistants_input_without_a_speaker(env: dict[str, Any]) -> None:
    """HA's shape (text, language, conversation_id, device_id, satellite_id, agent_id): answered, never 404/422."""
    c, h, service = env["client"], env["maple"], env["service"]
    body = {
        "text": "turn on the kitchen light",
        "language": "en",
        "conversation_id": "01JD8ZKX1ZQ4G3M6V2N5T7W9YA",
        "device_id": "4a1b9d0c2e3f",
        "satellite_id": "assist_satellite.kitchen_voice",
        "agent_id": "conversation.selflearn",
    }
    r = c.post("/v1/conversation", json=body, headers=h)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["intent"], out["slots"]) == ("HassTurnOn", {"name": "light.kitchen_ceiling"})
    assert out["intents"] == [{"name": "HassTurnOn", "entities": {"name": "Kitchen Light"}}]
    assert out["speech"] and not out["abstained"] and not out["handled"]
    assert out["user_id"] == "maple_house.household.assist_satellite.kitchen_voice"
    assert out["conversation_id"] == body["conversation_id"]
    nothing = c.post("/v1/conversation", json={"text": "purple monkey dishwasher", "language": "en"}, headers=h).json()
    assert nothing["abstained"] and nothing["intents"] == [] and nothing["user_id"] == "maple_house.household"
    service.flush()
    turns = service.store.logs().turns()
    assert set(turns["user_id"]) == {out["user_id"], "maple_house.household"}
    assert turns["asr_confidence"].null_count() == 2
    assert c.post("/v1/interpret", json={"text": "hi", "language": "en"}, headers=h).status_code == 422


def test_conversation_result_from_ha_marks_the_turn_once_and_only_in_its_home(env: dict[str, Any]) -> None:
    c, h, service = env["client"], env["maple"], env["service"]
    turn_id = c.post("/v1/conversation", json={"text": "turn on the desk lamp"}, headers=h).json()["turn_id"]
    report = {"turn_id": turn_id, "success": False, "error_code": "no_valid_targets", "speech": "No Desk Lamp"}
    assert c.post("/v1/conversation/result", json=report, headers=env["oak"]).status_code == 404  # another home
    r = c.post("/v1/conversation/result", json=report, headers=h)
    assert r.status_code == 200, r.text
    assert r.json() == {"turn_id": turn_id, "result_status": "failed"}
    again = c.post("/v1/conversation/result", json={"turn_id": turn_id, "success": True}, headers=h)
    assert again.status_code == 409 and "no unreported intents" in again.json()["error"]["message"]
    unknown = c.post("/v1/conversation/result", json={"turn_id": "t-nope", "success": True}, headers=h)
    assert unknown.status_code == 404
    bad = c.post("/v1/conversation/result", json={**report, "error_code": "'; DROP TABLE turns"}, headers=h)
    assert bad.status_code == 422
    service.flush()
    (row,) = service.store.logs().turns().iter_rows(named=True)
    assert (row["turn_id"], row["result_status"], row["response_text"]) == (turn_id, "failed", "No Desk Lamp")


def test_conversation_refuses_other_languages_and_admin_tokens(env: dict[str, Any]) -> None:
    c = env["client"]
    r = c.post("/v1/conversation", json={"text": "Licht an", "language": "de"}, headers=env["maple"])
    assert r.status_code == 422 and "language" in r.json()["error"]["message"]
    assert c.post("/v1/conversation", json={"text": "hi"}, headers=env["admin"]).status_code == 403
    assert c.post("/v1/conversation", json={"text": "hi"}).status_code == 401


def test_docs_pages_work_offline(env: dict[str, Any]) -> None:
    """/docs and /redoc load their scripts, styles and icon from this server, never from a CDN."""
    c = env["client"]
    for page in ("/docs", "/redoc"):
        html = c.get(page)
        assert html.status_code == 200
        refs = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html.text)
        assert refs and not [u for u in refs if re.match(r"^(https?:)?//", u)], refs
        assert not re.search(r"https?://(?!testserver)", html.text)
        assert page == "/redoc" or '"validatorUrl": null' in html.text  # no validator badge from swagger.io
        for ref in refs:
            assert c.get(ref).status_code == 200, ref

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selflearn.home import Home, shipped_homes
from selflearn.runtime.feedback import FEEDBACK_QUESTION, FeedbackPolicy, PendingRewrites
from selflearn.schema import Turn
from selflearn.teach.preferences import MemoryPreferences
from selflearn.teach.statements import Taught, Unclear, parse_statement, resolve_devices, vocabulary
from selflearn.teach.teacher import TEACH_OFFER, Teacher

NOW = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def home() -> Home:
    return next(h for h in shipped_homes() if h.id == "maple_house")


def turn(text: str, *, user: str = "maple.ana", status: str = "success", response: str = "Done.") -> Turn:
    return Turn(
        turn_id=f"t-{abs(hash((text, user, status))) % 10**8}",
        dialogue_id="d1",
        session_id="s1",
        user_id=user,
        home_id="maple_house",
        device_id="ep.kitchen_speaker",
        device_type="speaker",
        ts=NOW,
        asr_text=text,
        asr_confidence=0.9,
        result_status=status,  # type: ignore[arg-type]
        response_text=response,
        response_latency_ms=10.0,
    )


@pytest.mark.parametrize(
    ("text", "kind", "key", "value"),
    [
        ("I'm a Warriors fan", "team", "", "Golden State Warriors"),
        ("I am a huge dubs fan!", "team", "", "Golden State Warriors"),
        ("I support the warriers", "team", "", "Golden State Warriors"),
        ("My favourite team is the Niners", "team", "", "San Francisco 49ers"),
        ("I like Italian restaurants", "cuisine", "", "Italian"),
        ("I love sushi", "cuisine", "", "Japanese"),
        ("my favorite food is thai", "cuisine", "", "Thai"),
        ("My favourite music is jazz", "music_genre", "", "jazz"),
        ("I love listening to hip-hop", "music_genre", "", "hip hop"),
        ("Remember that I like classical music", "music_genre", "", "classical"),
        ("Wilkerson is the one in California", "place", "wilkerson", "Wilkerson, California"),
        ("When I say Springfield I mean the one in Oregon", "place", "springfield", "Springfield, Oregon"),
        (
            "When I say movie night I mean dim the living room lights and turn on the TV",
            "phrase",
            "movie night",
            "dim the living room lights|turn on the tv",
        ),
        ("the big light is the living room light", "device_alias", "big light", "light.living_ceiling"),
        ("when I say the big light I mean the floor lamp", "device_alias", "big light", "light.living_floor_lamp"),
        # as a recognizer may hear them
        ("i'm a packers fun", "team", "", "Green Bay Packers"),
        ("i'm a warriors", "team", "", "Golden State Warriors"),
        ("me like greek food", "cuisine", "", "Greek"),
        ("my favourite music blues", "music_genre", "", "blues"),
        ("carrollton is the one from texas", "place", "carrollton", "Carrollton, Texas"),
        ("and when i set make it snug i mean turn on the tv", "phrase", "make it snug", "turn on the tv"),
        ("when i a say make it snug i add mean turn on the tv", "phrase", "make it snug", "turn on the tv"),
    ],
)
def test_statements_parse_to_canonical_preferences(home: Home, text: str, kind: str, key: str, value: str) -> None:
    assert parse_statement(text, home) == Taught(kind, key, value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "turn on the kitchen light",
        "what is the weather",
        "play some jazz",
        "stop",
        "",
        "i'm cold",
        "i'm home",
        "i want thai food",
        "find me some greek food",
    ],
)
def test_commands_are_not_statements(home: Home, text: str) -> None:
    assert parse_statement(text, home) is None


def test_ambiguous_and_unknown_values_are_unclear(home: Home) -> None:
    jazz = parse_statement("I'm a jazz fan", home)
    assert isinstance(jazz, Unclear)
    assert {o.value for o in jazz.options} == {"jazz", "Utah Jazz"}
    la = parse_statement("I like Los Angeles", home)
    assert isinstance(la, Unclear) and "Los Angeles Lakers" in la.question()
    unknown = parse_statement("I like zorblax", home)
    assert isinstance(unknown, Unclear) and unknown.options == () and "zorblax" in unknown.question()
    rough = parse_statement("i like green food", home)
    assert isinstance(rough, Unclear) and [o.value for o in rough.options] == ["Greek"]
    assert rough.question() == "Did you mean Greek food?"


def test_vocabulary_nicknames_and_fuzzy() -> None:
    vocab = vocabulary()
    assert vocab.lookup("Warriors") == [("team", "Golden State Warriors")]
    assert vocab.lookup("lakers") == [("team", "Los Angeles Lakers")]
    assert vocab.lookup("itallian", ("cuisine",)) == [("cuisine", "Italian")]
    assert vocab.lookup("qwertyuiop") == []


def test_resolve_devices_by_name_and_area(home: Home) -> None:
    assert resolve_devices("the living room ceiling light", home) == ["light.living_ceiling"]
    assert resolve_devices("television", home) == ["media_player.living_tv"]
    assert resolve_devices("submarine", home) == []


def test_statement_is_stored_and_listed_per_user(home: Home) -> None:
    store = MemoryPreferences()
    teacher = Teacher(store)
    reply = teacher.handle("I'm a Warriors fan", user_id="maple.ana", home=home, now=NOW, last_turn=None)
    assert reply is not None and reply.status == "teach" and "Golden State Warriors" in reply.response
    assert [(p.kind, p.value, p.source) for p in store.preferences("maple.ana")] == [
        ("team", "Golden State Warriors", "statement")
    ]
    assert store.preferences("maple.ben") == []
    listed = teacher.handle("what do you know about me", user_id="maple.ana", home=home, now=NOW, last_turn=None)
    assert listed is not None and "Golden State Warriors" in listed.response
    assert teacher.handle("turn on the tv", user_id="maple.ana", home=home, now=NOW, last_turn=None) is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("when I say " + "la " * 80 + "I mean turn on the tv", "phrase is too long"),  # key over 200 characters
        ("when I say movie night I mean " + "turn on the tv and " * 80 + "turn on the lamp", "too long"),  # value
    ],
    ids=["key", "value"],
)
def test_a_statement_longer_than_a_preference_holds_is_answered_not_stored(home: Home, text: str, says: str) -> None:
    store = MemoryPreferences()
    reply = Teacher(store).handle(text, user_id="maple.ana", home=home, now=NOW, last_turn=None)
    assert reply is not None and says in reply.response and reply.preferences == ()
    assert store.preferences("maple.ana") == []


def test_clarifying_question_then_choice(home: Home) -> None:
    store = MemoryPreferences()
    teacher = Teacher(store)
    ask = teacher.handle("I'm a jazz fan", user_id="maple.ben", home=home, now=NOW, last_turn=None)
    assert ask is not None and ask.response.endswith("?") and store.preferences("maple.ben") == []
    done = teacher.handle("jazz music", user_id="maple.ben", home=home, now=NOW, last_turn=None)
    assert done is not None and [(p.kind, p.value) for p in store.preferences("maple.ben")] == [("music_genre", "jazz")]


def test_unknown_value_is_asked_about_not_silently_accepted(home: Home) -> None:
    store = MemoryPreferences()
    teacher = Teacher(store)
    ask = teacher.handle("I like zorblax", user_id="u1", home=home, now=NOW, last_turn=None)
    assert ask is not None and "zorblax" in ask.response and store.preferences("u1") == []
    teacher.handle("a kind of food", user_id="u1", home=home, now=NOW, last_turn=None)
    assert [(p.kind, p.value) for p in store.preferences("u1")] == [("cuisine", "Zorblax")]
    teacher.handle("I like qqqq", user_id="u1", home=home, now=NOW, last_turn=None)
    cancel = teacher.handle("cancel", user_id="u1", home=home, now=NOW, last_turn=None)
    assert cancel is not None and len(store.preferences("u1")) == 1


def test_guided_dialogue(home: Home) -> None:
    store = MemoryPreferences()
    teacher = Teacher(store)
    say = [
        ("learn my preferences", "sports team"),
        ("the warriors", "food"),
        ("skip", "music"),
        ("I love listening to jazz", "own name"),
        ("the big light is the floor lamp", "learned 3 things"),
    ]
    for text, expect in say:
        reply = teacher.handle(text, user_id="maple.ana", home=home, now=NOW, last_turn=None)
        assert reply is not None and expect in reply.response, (text, reply)
    assert not teacher.in_dialogue("maple.ana")
    got = {(p.kind, p.value, p.source, p.scope) for p in store.preferences("maple.ana")}
    assert got == {
        ("team", "Golden State Warriors", "guided", "*"),
        ("music_genre", "jazz", "guided", "*"),
        ("device_alias", "light.living_floor_lamp", "guided", "maple_house"),
    }


def test_guided_dialogue_can_stop_and_is_per_user(home: Home) -> None:
    store = MemoryPreferences()
    teacher = Teacher(store)
    teacher.handle("learn my preferences", user_id="maple.ana", home=home, now=NOW, last_turn=None)
    assert teacher.handle("lakers", user_id="maple.ben", home=home, now=NOW, last_turn=None) is None
    assert store.preferences("maple.ben") == []
    assert teacher.handle("stop", user_id="maple.ana", home=home, now=NOW, last_turn=None) is not None
    assert not teacher.in_dialogue("maple.ana") and store.preferences("maple.ana") == []


def test_teachable_moment_after_repeated_failure(home: Home) -> None:
    store = MemoryPreferences()
    teacher = Teacher(store)
    failed = turn("make it cozy", status="no_match", response="Sorry, I didn't understand.")
    offer = teacher.handle("make it cozy", user_id="maple.ana", home=home, now=NOW, last_turn=failed)
    assert offer is not None and offer.response.endswith(TEACH_OFFER)
    ask = teacher.handle("yes", user_id="maple.ana", home=home, now=NOW, last_turn=None)
    assert ask is not None and "make it cozy" in ask.response
    taught = teacher.handle("turn on the floor lamp", user_id="maple.ana", home=home, now=NOW, last_turn=None)
    assert taught is not None and taught.feedback is not None and taught.feedback.kind == "teach"
    assert [(p.kind, p.key, p.value, p.source) for p in store.preferences("maple.ana")] == [
        ("phrase", "make it cozy", "turn on the floor lamp", "moment")
    ]


@pytest.mark.parametrize(
    "said", ["no that's wrong", "that's not what i asked", "wrong", "no that's not it", "ugh no that's wrong", "ugh no"]
)
def test_negatives_are_recognised(home: Home, said: str) -> None:
    reply = Teacher(MemoryPreferences()).handle(
        said, user_id="u", home=home, now=NOW, last_turn=turn("play my music", user="u")
    )
    assert reply is not None and reply.feedback_kind == "unsatisfied"


def test_replies_about_the_teachers_own_turn_are_not_feedback(home: Home) -> None:
    taught = turn("I'm a Warriors fan", status="teach", response="Got it")
    teacher = Teacher(MemoryPreferences(), pending=PendingRewrites())
    assert teacher.handle("that's wrong", user_id="maple.ana", home=home, now=NOW, last_turn=taught) is None
    assert teacher.handle("I meant the Lakers", user_id="maple.ana", home=home, now=NOW, last_turn=taught) is None


def test_correction_after_no_refers_to_the_request(home: Home) -> None:
    pending = PendingRewrites()
    teacher = Teacher(
        MemoryPreferences(), policy=FeedbackPolicy(every_turns=0, min_interval=timedelta(0)), pending=pending
    )
    failed = turn("switch on the cooking light", status="no_entity", response=f"Which one? {FEEDBACK_QUESTION}")
    no = teacher.handle("no", user_id="maple.ana", home=home, now=NOW, last_turn=failed)
    assert no is not None and no.feedback_kind == "no"
    no_turn = turn("no", status="feedback", response=no.response)
    fix = teacher.handle(
        "I meant turn on the kitchen light", user_id="maple.ana", home=home, now=NOW, last_turn=no_turn
    )
    assert fix is not None and fix.feedback is not None and fix.feedback.turn_id == failed.turn_id
    assert pending.get("maple.ana", "switch on the cooking light") is not None
    late = teacher.handle(
        "that's wrong", user_id="maple.ana", home=home, now=NOW + timedelta(hours=1), last_turn=no_turn
    )
    assert late is None


def test_teachable_moment_answered_in_one_breath(home: Home) -> None:
    store = MemoryPreferences()
    teacher = Teacher(store)
    failed = turn("make it cozy", status="no_match")
    teacher.handle("make it cozy", user_id="maple.ana", home=home, now=NOW, last_turn=failed)
    done = teacher.handle("yes I meant turn on the floor lamp", user_id="maple.ana", home=home, now=NOW, last_turn=None)
    assert done is not None and done.preferences[0].value == "turn on the floor lamp"
    assert done.preferences[0].key == "make it cozy" and done.preferences[0].source == "moment"


def test_no_moment_for_a_different_request_or_other_user(home: Home) -> None:
    teacher = Teacher(MemoryPreferences())
    failed = turn("make it cozy", status="no_match")
    assert teacher.handle("turn on the tv", user_id="maple.ana", home=home, now=NOW, last_turn=failed) is None
    assert teacher.handle("make it cozy", user_id="maple.ben", home=home, now=NOW, last_turn=failed) is None


def test_unsatisfied_offers_teaching_and_logs_feedback(home: Home) -> None:
    teacher = Teacher(MemoryPreferences())
    reply = teacher.handle("that's wrong", user_id="maple.ana", home=home, now=NOW, last_turn=turn("play my music"))
    assert reply is not None and reply.feedback_kind == "unsatisfied" and reply.feedback is not None
    assert reply.feedback.kind == "no" and reply.response.endswith(TEACH_OFFER)
    assert teacher.handle("no thanks", user_id="maple.ana", home=home, now=NOW, last_turn=None) is not None
    assert not teacher.in_dialogue("maple.ana")


def test_feedback_answers_after_the_question(home: Home) -> None:
    policy = FeedbackPolicy(every_turns=0, min_interval=timedelta(0))
    pending = PendingRewrites()
    teacher = Teacher(MemoryPreferences(), policy=policy, pending=pending)
    last = turn("play the game", response=f"Playing. {FEEDBACK_QUESTION}")
    assert policy.should_ask(user_id="maple.ana", now=NOW, confidence=0.3, rewritten=False)
    yes = teacher.handle("yes", user_id="maple.ana", home=home, now=NOW, last_turn=last)
    assert yes is not None and yes.feedback_kind == "yes" and yes.feedback is not None
    assert yes.feedback.kind == "yes" and yes.feedback.turn_id == last.turn_id
    no = teacher.handle("no", user_id="maple.ana", home=home, now=NOW, last_turn=last)
    assert no is not None and no.feedback is not None and no.feedback.kind == "no"
    assert teacher.handle("nope", user_id="maple.ana", home=home, now=NOW, last_turn=None) is not None
    fix = teacher.handle("No, I meant play the warriors game", user_id="maple.ana", home=home, now=NOW, last_turn=last)
    assert fix is not None and fix.feedback is not None and fix.feedback.kind == "correction"
    assert fix.feedback.correction_text == "play the warriors game" == fix.correction_text
    got = pending.get("maple.ana", "Play the game!")
    assert got is not None and got.target == "play the warriors game"
    assert pending.get("maple.ben", "play the game") is None


def test_bare_no_is_unsatisfied_with_the_last_answer_and_never_a_request(home: Home) -> None:
    pending = PendingRewrites()
    teacher = Teacher(MemoryPreferences(), policy=FeedbackPolicy(), pending=pending)
    reply = teacher.handle("no", user_id="maple.ana", home=home, now=NOW, last_turn=turn("play the game"))
    assert reply is not None and reply.feedback_kind == "unsatisfied"
    no_turn = turn("no", status="feedback")
    teacher.handle("I meant put the warriors game on", user_id="maple.ana", home=home, now=NOW, last_turn=no_turn)
    assert pending.get("maple.ana", "play the game") is not None and pending.get("maple.ana", "no") is None
    assert Teacher(MemoryPreferences()).handle("no", user_id="maple.ana", home=home, now=NOW, last_turn=None) is None


def test_taught_preferences_are_used_on_the_next_request_and_never_leak() -> None:
    from selflearn.eval.suites.teach import run_probes

    homes = shipped_homes()[:2]
    taught = run_probes(homes, teach=True)
    assert taught["applied_next_turn_rate"] == 1.0 and taught["leak_rate"] == 0.0
    assert taught["probes"] >= 12 and taught["leak_checks"] >= 12
    assert run_probes(homes, teach=False)["applied_next_turn_rate"] < 0.5


def test_simulated_users_teach_their_own_preferences() -> None:
    from selflearn.sim import SimConfig, Simulation, generate_homes
    from selflearn.sim.teaching import TeachingUsers

    homes = generate_homes(2, 0)
    store = MemoryPreferences()
    teacher = Teacher(store, policy=FeedbackPolicy())
    sim = Simulation(homes, seed=0, config=SimConfig(teach_probability=1.0), teaching=TeachingUsers())
    log = sim.run_day(1, preferences=store.preferences, feedback_policy=teacher.policy, teacher=teacher)
    assert sum(t.result_status == "teach" for t in log.turns) > 0
    people = {p.id: h.id for h in homes for p in h.people}
    taught = [p for user in people for p in store.preferences(user)]
    assert taught and all(p.scope in ("*", people[p.user_id]) for p in taught)


def test_cli_teach_then_interpret_uses_it(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from selflearn.cli.main import app

    runner = CliRunner()
    db = str(tmp_path / "logs.duckdb")
    taught = runner.invoke(app, ["teach", "I'm a Celtics fan", "--user", "maple.ana", "--db", db, "--json"])
    assert taught.exit_code == 0, taught.output
    assert json.loads(taught.stdout)["preferences"][0]["value"] == "Boston Celtics"
    said = runner.invoke(app, ["interpret", "put the game on", "--user", "maple.ana", "--db", db, "--json"])
    assert json.loads(said.stdout)["turn"]["nlu_slots"]["team"] == "Boston Celtics"
    assert runner.invoke(app, ["teach", "turn on the tv", "--user", "maple.ana", "--db", db]).exit_code == 1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=80),
            st.sampled_from(
                [
                    "learn my preferences",
                    "yes",
                    "no",
                    "skip",
                    "stop",
                    "I like",
                    "I'm a fan",
                    "when I say I mean",
                    "is the one in",
                    "the is the",
                    "I meant",
                    "that's wrong",
                    "what do you know about me",
                ]
            ),
        ),
        max_size=8,
    )
)
def test_teacher_never_raises_on_any_dialogue(texts: list[str]) -> None:
    home = shipped_homes()[0]
    teacher = Teacher(MemoryPreferences(), policy=FeedbackPolicy(every_turns=0), pending=PendingRewrites())
    last = turn("switch on the cooking light", status="no_match")
    for text in texts:
        reply = teacher.handle(text, user_id="u1", home=home, now=NOW, last_turn=last)
        assert reply is None or reply.response

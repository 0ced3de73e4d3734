from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from selflearn.home import Area, Device, Domain, Endpoint, Home
from selflearn.learners.mining import MiningConfig, RewriteMiner, RewriteTables, absorb, intent_domain
from selflearn.runtime.rewrites import REWRITE_SCHEMA, personal_path, read_global, read_personal
from selflearn.schema import Turn
from selflearn.sim.synthlogs import commands, generate
from selflearn.store.logview import LogView

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def turn(user: str, at: float, text: str, status: str = "success", intent: str | None = "HassTurnOn") -> Turn:
    return Turn(
        turn_id=f"{user}-{at}",
        dialogue_id=f"{user}-{int(at) // 1000}",
        session_id=f"{user}-{int(at) // 1000}",
        user_id=user,
        home_id=f"home-{user}",
        device_id="speaker",
        device_type="speaker",
        ts=T0 + timedelta(seconds=at),
        asr_text=text,
        asr_confidence=0.9,
        result_status=status,
        nlu_intent=intent if status == "success" else None,
        response_latency_ms=200.0,
    )


def repair(user: str, at: float, bad: str, good: str, intent: str = "HassTurnOn") -> list[Turn]:
    return [turn(user, at, bad, "no_match"), turn(user, at + 5, good, intent=intent)]


def test_mined_global_rewrites_map_bad_forms_to_their_good_form() -> None:
    turns, _ = generate(40_000, seed=4)
    tables = RewriteMiner().fit(_view(turns))
    truth = pl.concat(
        [commands(100).select(source=pl.col(bad), expected=pl.col("good")) for bad in ("bad_asr", "bad_phrase")]
    )
    got = tables.global_table.join(truth, on="source", how="left")
    assert got.height > 300
    assert (got["target"] == got["expected"]).mean() > 0.97
    assert got["distinct_users"].min() >= 5 and got["support"].min() >= 5
    assert tables.global_table.schema == REWRITE_SCHEMA
    assert set(tables.personal_table["layer"]) == {"personal"}
    assert tables.personal_table["support"].min() >= 2


def _view(turns: pl.DataFrame) -> LogView:
    from selflearn.schema import ARROW_SCHEMAS, Feedback

    return LogView(turns.to_arrow().cast(ARROW_SCHEMAS[Turn]), ARROW_SCHEMAS[Feedback].empty_table())


def test_k_anonymity_poisoned_logs_make_no_global_rewrite() -> None:
    """Four users (< k = 5) hammering a bogus rephrase many times: personal rewrites only, no global one."""
    turns: list[Turn] = []
    for u in range(4):
        for k in range(30):
            turns += repair(f"troll{u}", 2000 * k + u * 50, "turn on the kitchen light", "turn on the kitchen heater")
    for u in range(20):  # the honest majority: the form works
        turns.append(turn(f"user{u}", 100_000 + u, "turn on the kitchen light"))
    tables = RewriteMiner().fit(LogView.from_records(turns))
    assert tables.global_table.height == 0
    assert set(tables.personal_table["user_id"]) == {f"troll{u}" for u in range(4)}


def test_k_users_create_a_global_rewrite_and_a_fifth_user_is_enough() -> None:
    turns: list[Turn] = []
    for u in range(5):
        turns += repair(f"u{u}", 100 * u, "lights of", "lights off", intent="HassTurnOff")
    table = RewriteMiner().fit(LogView.from_records(turns)).global_table
    assert table.select("source", "target", "support", "distinct_users").row(0) == ("lights of", "lights off", 5, 5)
    assert table["probability"][0] == pytest.approx(1.0)
    fewer = RewriteMiner().fit(LogView.from_records(turns[:8])).global_table
    assert fewer.height == 0


def test_absorbing_chain_follows_multi_step_repairs() -> None:
    """a -> b (fails) -> c (works): a's rewrite is c, not the failing b; a's probability counts the give-ups."""
    transitions = pl.DataFrame(
        {
            "form": ["a", "a", "a", "a", "b", "b"],
            "to_kind": ["fail", "fail", "fail", "gave_up", "ok", "ok"],
            "to_form": ["b", "b", "b", None, "c", "d"],
        }
    )
    solved = {r["form"]: r for r in absorb(transitions).iter_rows(named=True)}
    assert solved["b"]["probability"] == pytest.approx(0.5)
    assert solved["a"]["target"] in ("c", "d")
    assert solved["a"]["probability"] == pytest.approx(0.75 * 0.5)


def test_absorbing_chain_with_a_cycle() -> None:
    transitions = pl.DataFrame({"form": ["a", "b", "b"], "to_kind": ["fail", "fail", "ok"], "to_form": ["b", "a", "c"]})
    solved = {r["form"]: r for r in absorb(transitions).iter_rows(named=True)}
    assert solved["a"]["probability"] == pytest.approx(1.0)
    assert solved["a"]["target"] == "c"


def test_absorbing_chain_with_a_closed_failing_loop() -> None:
    """x only ever leads to x again (repeated, never repaired): no target for x, and no singular solve."""
    transitions = pl.DataFrame({"form": ["x", "x", "a"], "to_kind": ["fail", "fail", "ok"], "to_form": ["x", "x", "c"]})
    solved = {r["form"]: r for r in absorb(transitions).iter_rows(named=True)}
    assert "x" not in solved and solved["a"]["target"] == "c"


def test_domain_change_needs_strong_evidence() -> None:
    turns: list[Turn] = []
    for u in range(6):  # understood as media, users meant the light: a cross-domain rewrite with only 6 users
        turns += [
            turn(f"u{u}", 100 * u, "play the lights", "no_entity"),
            turn(f"u{u}", 100 * u + 4, "turn on the lights", intent="HassTurnOn"),
        ]
    source_intent = pl.DataFrame({"i": ["HassMediaPlay", "HassTurnOn", "HassLightSet", None]})
    domains = source_intent.select(d=intent_domain(pl.col("i")))["d"].to_list()
    assert domains == ["media", "device", "device", None]
    rows = [t.model_copy(update={"nlu_intent": "HassMediaPlay"}) if t.result_status != "success" else t for t in turns]
    assert RewriteMiner().fit(LogView.from_records(rows)).global_table.height == 0
    lenient = MiningConfig(domain_change_users=6, domain_change_probability=0.9)
    assert RewriteMiner(lenient).fit(LogView.from_records(rows)).global_table.height == 1


def test_tables_round_trip_and_personal_files_per_user(tmp_path: Path) -> None:
    turns: list[Turn] = []
    for k in range(3):
        turns += repair("ann", 1000 * k, "tv of", "tv off", intent="HassTurnOff")
    turns += repair("bob", 50, "tv of", "tv off", intent="HassTurnOff")  # once only: below personal support
    tables = RewriteMiner().fit(LogView.from_records(turns))
    assert tables.personal_table.select("user_id", "source", "target", "support").rows() == [
        ("ann", "tv of", "tv off", 3)
    ]
    tables.save(tmp_path)
    assert personal_path(tmp_path, "ann").exists() and not personal_path(tmp_path, "bob").exists()
    assert read_personal(tmp_path, "ann").equals(tables.personal_table)
    assert read_global(tmp_path).height == 0
    assert RewriteTables.load(tmp_path).personal_table.equals(tables.personal_table)


def test_empty_logs() -> None:
    tables = RewriteMiner().fit(LogView.from_records([]))
    assert tables.global_table.height == 0 and tables.personal_table.height == 0


ROOMS = ("lounge", "den", "study", "porch", "attic", "cellar", "nursery", "loft")


def _homes(users: list[str]) -> list[Home]:
    """One home per user (``turn`` puts user u in home-u), each with its own room name."""
    return [
        Home(
            id=f"home-{u}",
            areas=[Area(id="r", name=ROOMS[i % len(ROOMS)])],
            devices=[Device(id="light.r", name=f"{ROOMS[i % len(ROOMS)]} lamp", domain="light", area="r")],
            endpoints=[Endpoint(id="speaker", type="speaker", area="r")],
        )
        for i, u in enumerate(users)
    ]


def test_pattern_rules_pool_one_wording_across_homes_with_different_names() -> None:
    users = [f"u{i}" for i in range(5)]
    turns: list[Turn] = []
    for i, u in enumerate(users):
        room = ROOMS[i]
        turns += repair(u, 100 * i, f"lights out in the {room}", f"turn off the lights in the {room}", "HassTurnOff")
    tables = RewriteMiner().fit(LogView.from_records(turns), homes=_homes(users))
    assert tables.global_table.height == 0  # as forms, each wording is one user's
    row = tables.pattern_table.select("source", "target", "support", "distinct_users").row(0)
    assert row == ("lights out in the _area_", "turn off the lights in the _area_", 5, 5)
    assert RewriteMiner().fit(LogView.from_records(turns)).pattern_table.height == 0  # no homes: no names


def test_device_placeholders_pool_only_within_one_device_domain() -> None:
    """Six users repair the same wording of their "<room> box": as ``_device_`` that would be one rule; typed by
    domain, three lights and three locks are two wordings of three users each (< k), and six lights are one."""
    users = [f"u{i}" for i in range(6)]
    turns: list[Turn] = []
    for i, u in enumerate(users):
        turns += repair(u, 100 * i, f"fire up the {ROOMS[i]} box", f"turn on the {ROOMS[i]} box", "HassTurnOn")

    def homes(domains: list[Domain]) -> list[Home]:
        return [
            Home(
                id=f"home-{u}",
                areas=[Area(id="r", name="hall")],
                devices=[Device(id=f"{d}.r", name=f"{ROOMS[i]} box", domain=d, area="r")],
                endpoints=[Endpoint(id="speaker", type="speaker", area="r")],
            )
            for i, (u, d) in enumerate(zip(users, domains, strict=True))
        ]

    mixed = RewriteMiner().fit(LogView.from_records(turns), homes=homes(["light"] * 3 + ["lock"] * 3))
    assert mixed.pattern_table.height == 0
    lights = RewriteMiner().fit(LogView.from_records(turns), homes=homes(["light"] * 6)).pattern_table
    assert lights.select("source", "target", "distinct_users").rows() == [
        ("fire up the _light_", "turn on the _light_", 6)
    ]


def test_k_anonymity_holds_for_pattern_rules() -> None:
    """Four users (< k) in four homes hammering a bogus rephrase of one pattern: no pattern rule."""
    users = [f"troll{i}" for i in range(4)]
    turns: list[Turn] = []
    for i, u in enumerate(users):
        for k in range(30):
            turns += repair(u, 2000 * k + i * 50, f"turn on the {ROOMS[i]} lamp", f"open the {ROOMS[i]} lamp")
    tables = RewriteMiner().fit(LogView.from_records(turns), homes=_homes(users))
    assert tables.pattern_table.height == 0 and tables.global_table.height == 0
    assert tables.personal_table.height == 4


def test_pattern_rule_target_only_uses_placeholders_the_source_fills() -> None:
    users = [f"u{i}" for i in range(6)]
    turns: list[Turn] = []
    for i, u in enumerate(users):
        turns += repair(u, 100 * i, "lights out please", f"turn off the lights in the {ROOMS[i]}", "HassTurnOff")
    tables = RewriteMiner().fit(LogView.from_records(turns), homes=_homes(users))
    assert tables.pattern_table.height == 0  # "_area_" would have nothing to fill it online


def test_learn_publishes_pattern_rules_and_the_rewriter_fills_in_a_new_homes_room(tmp_path: Path) -> None:
    from selflearn.artifacts import ArtifactStore
    from selflearn.learners.learn import learn
    from selflearn.runtime.rewriter import OnlineRewriter

    users = [f"u{i}" for i in range(7)]
    turns: list[Turn] = []
    for i, u in enumerate(users[:5]):
        room = ROOMS[i]
        turns += repair(u, 100 * i, f"lights out in the {room}", f"turn off the lights in the {room}", "HassTurnOff")
    homes = _homes(users)
    store = ArtifactStore(tmp_path / "artifacts")
    report = learn(LogView.from_records(turns), store, homes=homes[:5])
    assert report.published and report.global_patterns == 1 and report.global_rewrites == 0
    root = store.current_dir()
    assert root is not None and RewriteTables.load(root).pattern_table.height == 1
    unseen = homes[6]  # a home none of the five lives in, with its own room name
    best = OnlineRewriter.load(root).best(f"lights out in the {ROOMS[6]}", user_id="u6", home=unseen)
    assert best is not None and best.text == f"turn off the lights in the {ROOMS[6]}"


def test_a_no_between_failure_and_repair_does_not_break_the_chain() -> None:
    turns: list[Turn] = []
    for u in range(5):
        at = 100 * u
        turns += [
            turn(f"u{u}", at, "lights of", "no_match"),
            turn(f"u{u}", at + 3, "no that's wrong", "no_match"),
            turn(f"u{u}", at + 6, "lights off", intent="HassTurnOff"),
        ]
    table = RewriteMiner().fit(LogView.from_records(turns)).global_table
    assert table.select("source", "target", "support", "distinct_users").rows() == [("lights of", "lights off", 5, 5)]


def test_after_no_result_the_next_words_are_a_rephrase_however_different() -> None:
    """After "sorry, I didn't get that", what a user says seconds later is their second try, even in other words;
    after a success, different words are a new request."""
    from selflearn.learners.mining import baseline_rephrase
    from selflearn.learners.signals import DefectSignals

    turns: list[Turn] = []
    for u in range(5):
        turns += repair(f"u{u}", 100 * u, "do i need an umbrella", "what is the weather", "HassGetWeather")
    table = RewriteMiner().fit(LogView.from_records(turns)).global_table
    assert table.select("source", "target", "support", "distinct_users").rows() == [
        ("do i need an umbrella", "what is the weather", 5, 5)
    ]
    pairs = [turn("v", 0, "turn on the lamp"), turn("v", 5, "what is the weather", intent="HassGetWeather")]
    scored = DefectSignals().score(LogView.from_records(pairs))
    assert baseline_rephrase(scored, MiningConfig()).to_list() == [False, False]


def test_a_wording_that_names_nothing_pools_across_homes_on_intent_and_slot_names() -> None:
    """The NLU fills the area of "turn up the volume" from the speaker's room: as forms, five homes' repairs of
    "louder" are five outcomes of one user each; as a pattern (intent + slot names), one rule that needs no name."""
    users = [f"u{i}" for i in range(5)]
    turns: list[Turn] = []
    for i, u in enumerate(users):
        bad, good = repair(u, 100 * i, "louder", "turn up the volume", "HassSetVolumeRelative")
        turns += [bad, good.model_copy(update={"nlu_slots": {"area": ROOMS[i], "volume_step": "up"}})]
    tables = RewriteMiner().fit(LogView.from_records(turns), homes=_homes(users))
    assert tables.global_table.height == 0
    assert tables.pattern_table.select("source", "target", "distinct_users").rows() == [
        ("louder", "turn up the volume", 5)
    ]


def test_a_persons_own_word_for_a_device_becomes_a_rule_for_that_domain() -> None:
    """Five people call their vacuum "the hoover"; each home names it differently, so only the pattern
    "start the hoover" -> "start the _vacuum_" reaches k users (filled online from a home with one vacuum)."""
    users = [f"u{i}" for i in range(5)]
    names = ["robot vacuum", "roomba", "dustbot", "cleaner", "robo"]
    turns: list[Turn] = []
    for i, u in enumerate(users):
        bad, good = repair(u, 100 * i, "start the hoover", f"start the {names[i]}", "HassVacuumStart")
        turns += [bad, good.model_copy(update={"nlu_slots": {"name": names[i]}})]
    homes = [
        Home(
            id=f"home-{u}",
            areas=[Area(id="r", name="hall")],
            devices=[Device(id="vacuum.r", name=names[i], domain="vacuum", area="r")],
            endpoints=[Endpoint(id="speaker", type="speaker", area="r")],
        )
        for i, u in enumerate(users)
    ]
    tables = RewriteMiner().fit(LogView.from_records(turns), homes=homes)
    assert tables.global_table.height == 0
    assert tables.pattern_table.select("source", "target", "distinct_users").rows() == [
        ("start the hoover", "start the _vacuum_", 5)
    ]


def test_a_persons_routine_after_no_result_yields_to_the_populations_repair() -> None:
    """One person says "coffee please", hears "sorry", and asks for the weather as every morning: a weak link (no
    one understood the source, the follow-up shares none of its words). Where other users repaired the same form
    to another intent, their global rule wins; without one, the person's own rule stands."""
    person = [
        t for i in range(3) for t in repair("p", 1000 * i, "coffee please", "what is the weather", "HassGetWeather")
    ]
    others = [t for u in range(5) for t in repair(f"u{u}", 100 * u, "coffee please", "make coffee", "HassCoffee")]
    alone = RewriteMiner().fit(LogView.from_records(person))
    assert alone.personal_table.select("user_id", "target").rows() == [("p", "what is the weather")]
    tables = RewriteMiner().fit(LogView.from_records(person + others))
    assert tables.global_table.select("source", "target").rows() == [("coffee please", "make coffee")]
    assert "p" not in tables.personal_table["user_id"].to_list()
    similar = [
        t
        for i in range(3)
        for t in repair("p", 1000 * i, "coffee please", "coffee please in ten minutes", "HassStartTimer")
    ]
    kept = RewriteMiner().fit(LogView.from_records(similar + others)).personal_table
    assert kept.filter(pl.col("user_id") == "p").select("target").rows() == [("coffee please in ten minutes",)]


def chains_from(
    homes: int, users_per_home: int, bad: str, good: str, repeats: int = 1, intent: str = "HassTurnOn", start: float = 0
) -> list[Turn]:
    """``repeats`` repairs ``bad`` -> ``good`` by each of ``users_per_home`` user ids in each of ``homes`` homes."""
    turns: list[Turn] = []
    for h in range(homes):
        for u in range(users_per_home):
            user = f"h{h}u{u}"
            for k in range(repeats):
                at = start + 5000.0 * k + 60 * (h * users_per_home + u)
                turns += [t.model_copy(update={"home_id": f"home{h}"}) for t in repair(user, at, bad, good, intent)]
    return turns


OLD_GUARDS = MiningConfig(min_homes=1, sensitive_guard=False, hygiene=False)


def test_invented_user_ids_in_one_home_make_no_global_rule() -> None:
    """Issue 14.2: five user ids in one home, 20 chains each of "disarm the alarm" -> "unlock the garage door" made a
    global rule (support 100, 5 users, probability 1.0) under the old guards; k users must come from k homes."""
    logs = LogView.from_records(chains_from(1, 5, "disarm the alarm", "unlock the garage door", repeats=20))
    old = RewriteMiner(OLD_GUARDS).fit(logs).global_table
    assert old.select("source", "target", "distinct_users", "probability").rows() == [
        ("disarm the alarm", "unlock the garage door", 5, 1.0)
    ]
    tables = RewriteMiner().fit(logs)
    assert tables.global_table.height == 0
    assert tables.personal_table.height == 0  # hygiene: an alarm is not a garage door, for anyone


def test_global_rules_need_users_from_min_homes() -> None:
    two = LogView.from_records(chains_from(2, 3, "lights of", "lights off", intent="HassTurnOff"))
    three = LogView.from_records(chains_from(3, 2, "lights of", "lights off", intent="HassTurnOff"))
    assert RewriteMiner().fit(two).global_table.height == 0
    assert RewriteMiner().fit(three).global_table["target"].to_list() == ["lights off"]
    assert RewriteMiner(MiningConfig(min_homes=4)).fit(three).global_table.height == 0


def test_a_sensitive_target_of_an_unread_source_needs_more_homes() -> None:
    """Nobody's NLU read "open sesame", so "no domain change" proves nothing: unlocking needs 5 homes, not 3."""
    four = LogView.from_records(chains_from(4, 2, "open sesame", "unlock the front door", intent="HassTurnOff"))
    five = LogView.from_records(chains_from(5, 1, "open sesame", "unlock the front door", intent="HassTurnOff"))
    assert RewriteMiner().fit(four).global_table.height == 0
    assert RewriteMiner(OLD_GUARDS).fit(four).global_table.height == 1
    assert RewriteMiner().fit(five).global_table["target"].to_list() == ["unlock the front door"]
    harmless = LogView.from_records(chains_from(3, 2, "open sesame", "play some jazz", intent="PlayMedia"))
    assert RewriteMiner().fit(harmless).global_table.height == 1


def test_hygiene_drops_rules_in_every_layer() -> None:
    """The 128-home learn's bad rules: another device, another kind of device, a bare fragment."""
    turns = (
        chains_from(5, 2, "open the drapes", "open the garage door", repeats=2)
        + chains_from(5, 2, "set the garage brightness to 20", "open the garage door", repeats=2, start=20_000)
        + chains_from(4, 2, "start", "make coffee", repeats=2, intent="StartProgram", start=40_000)
        + chains_from(4, 2, "kill the lights", "turn off the lights", repeats=2, intent="HassTurnOff", start=60_000)
    )
    tables = RewriteMiner().fit(LogView.from_records(turns))
    assert tables.global_table.select("source", "target").rows() == [("kill the lights", "turn off the lights")]
    assert set(tables.personal_table["source"]) == {"kill the lights"}
    unguarded = RewriteMiner(MiningConfig(hygiene=False)).fit(LogView.from_records(turns))
    assert unguarded.global_table.height == 4

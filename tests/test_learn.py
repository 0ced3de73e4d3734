from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from selflearn.artifacts import ArtifactStore
from selflearn.home import SHIPPED_HOMES_DIR, load_home, shipped_homes
from selflearn.learners.learn import LearnConfig, LearnError, learn
from selflearn.learners.mining import MiningConfig
from selflearn.runtime.rewrites import read_global, read_personal
from selflearn.runtime.runtime import Runtime
from selflearn.schema import Feedback, Turn, to_arrow
from selflearn.store.logview import LogView

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def turn(user: str, at: float, text: str, status: str = "success", intent: str | None = "HassTurnOff") -> Turn:
    return Turn(
        turn_id=f"{user}-{at}",
        dialogue_id=f"{user}-{int(at)}",
        session_id=f"{user}-{int(at)}",
        user_id=user,
        home_id=f"h-{user}",  # each person their own home: global rules need several homes
        device_id="speaker",
        device_type="speaker",
        ts=T0 + timedelta(seconds=at),
        asr_text=text,
        asr_confidence=0.9,
        result_status=status,
        nlu_intent=intent if status == "success" else None,
        response_latency_ms=200.0,
    )


def repairs(users: range, at: float, bad: str = "lights of") -> list[Turn]:
    out = []
    for u in users:
        out += [turn(f"u{u}", at + 60 * u, bad, "no_match"), turn(f"u{u}", at + 60 * u + 5, "lights off")]
    return out


def test_learn_publishes_global_and_personal_tables(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    day = 86_400.0
    turns = repairs(range(6), 0) + repairs(range(3), 3600) + repairs(range(6), day)
    report = learn(LogView.from_records(turns), store)
    assert report.published and report.version == store.current()
    assert report.shadow is not None and report.shadow.accepted
    assert report.shadow.defect_rate_after < report.shadow.defect_rate_before
    root = store.current_dir()
    assert root is not None
    assert read_global(root).select("source", "target").rows() == [("lights of", "lights off")]
    assert read_personal(root, "u0")["support"].to_list() == [3]
    assert report.turns == len(turns) and report.global_rewrites == 1 and report.personal_users == 6
    assert report.to_dict()["shadow"]["held_out_since"].startswith("2026-11-02T08:05")


def test_learn_on_hostile_user_ids_writes_nothing_outside_and_plants_nothing(tmp_path: Path) -> None:
    """Ids that schema validation would refuse, in logs stored before it existed: no personal rules for them."""
    hostile = {"u0": "../../../../../outside", "u1": "x/../u5", "u2": str(tmp_path / "abs"), "u3": "..", "u4": ".u5"}
    day = 86_400.0
    turns = to_arrow(repairs(range(6), 0) + repairs(range(6), 3600) + repairs(range(6), day), Turn)
    users = [hostile.get(u, u) for u in turns["user_id"].to_pylist()]
    turns = turns.set_column(turns.schema.get_field_index("user_id"), "user_id", pa.array(users, pa.string()))
    store = ArtifactStore(tmp_path / "art" / "artifacts")
    report = learn(LogView(turns, to_arrow([], Feedback)), store)  # the shadow replay meets the hostile ids too
    assert report.published and report.personal_users == 1  # only u5 has a valid id
    root = store.current_dir()
    assert root is not None and sorted(p.name for p in (root / "personal").iterdir()) == ["u5"]
    assert read_personal(root, "u5")["support"].to_list() == [3]  # u5's own rules, none planted by x/../u5
    assert read_personal(root, "x/../u5").height == 0  # what the shadow replay reads for such a logged id
    outside = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "art" not in p.parts)
    assert outside == []


def test_shadow_check_rejects_a_batch_that_would_break_the_held_out_day(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    first = learn(LogView.from_records(repairs(range(6), 0)), store)  # one day: no shadow check possible
    assert first.published and first.shadow is None
    day = 86_400.0
    works_now = [turn(f"v{u}", day + 30 * u, "lights of", intent="HassTurnOn") for u in range(40)]
    report = learn(LogView.from_records(repairs(range(6), 0) + works_now), store)
    assert report.shadow is not None and not report.shadow.accepted
    assert report.shadow.would_break > report.shadow.would_fix
    assert not report.published and store.current() == first.version == report.version


def test_learn_without_shadow(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    report = learn(LogView.from_records(repairs(range(6), 0)), store, config=LearnConfig(shadow=False))
    assert report.published and report.shadow is None and report.global_rewrites == 1
    root = store.current_dir()
    assert root is not None and read_global(root).height == 1


def test_learn_never_publishes_a_set_learned_from_no_turns(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    first = learn(LogView.from_records(repairs(range(6), 0)), store).version
    with pytest.raises(LearnError, match="no turns to learn from"):
        learn(LogView.from_records([]), store, config=LearnConfig(shadow=False))
    assert store.current() == first and len(store.versions()) == 1


def test_learn_refuses_a_set_that_drops_most_rules_in_service_unless_allowed(tmp_path: Path) -> None:
    """A set of 1 rule after one of 3: kept back (a wrong or emptied store, not a night's learning); with
    ``allow_shrink`` it is published."""

    def fixes(bad: str, at: float) -> list[Turn]:
        pairs = (
            (turn(f"u{u}", at + 60 * u, bad, "no_match"), turn(f"u{u}", at + 60 * u + 5, "lights off"))
            for u in range(5)
        )
        return [t for pair in pairs for t in pair]

    store = ArtifactStore(tmp_path)
    three = fixes("lights of", 0) + fixes("lights of please", 1000) + fixes("lites off", 2000)
    first = learn(LogView.from_records(three), store, config=LearnConfig(shadow=False))
    assert first.published and first.global_rewrites == 3
    one = LogView.from_records(fixes("lites off", 2000))
    report = learn(one, store, config=LearnConfig(shadow=False))
    assert not report.published and report.refused is not None and "--allow-shrink" in report.refused
    assert report.global_rewrites == 1 and store.current() == first.version == report.version
    forced = learn(one, store, config=LearnConfig(shadow=False, allow_shrink=True))
    assert forced.published and forced.refused is None and store.current() == forced.version


def test_cli_learn_json_from_the_store(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from selflearn.cli.main import app
    from selflearn.store.logstore import Store

    db = tmp_path / "logs.duckdb"
    store = Store(db)
    store.add(turns=repairs(range(6), 0))
    store.close()
    result = CliRunner().invoke(app, ["learn", "--db", str(db), "--artifacts", str(tmp_path / "art"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["published"] and report["global_rewrites"] == 1 and report["turns"] == 12
    assert read_global(ArtifactStore(tmp_path / "art").current_dir())["target"].to_list() == ["lights off"]  # type: ignore[arg-type]


def test_cli_learn_on_an_empty_store_exits_1_and_keeps_the_set_in_service(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from selflearn.cli.main import app
    from selflearn.store.logstore import Store

    art = ArtifactStore(tmp_path / "art")
    kept = learn(LogView.from_records(repairs(range(6), 0)), art).version
    Store(tmp_path / "empty.duckdb").close()
    result = CliRunner().invoke(app, ["learn", "--db", str(tmp_path / "empty.duckdb"), "--artifacts", str(art.root)])
    assert result.exit_code == 1 and "no turns to learn from" in result.output
    assert art.current() == kept and len(art.versions()) == 1


def test_cli_learn_refuses_to_shrink_the_set_in_service_without_allow_shrink(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from selflearn.cli.main import app
    from selflearn.store.logstore import Store

    art = ArtifactStore(tmp_path / "art")
    three = [
        t for i, bad in enumerate(("lights of", "lites off", "light of")) for t in repairs(range(6), 1000 * i, bad)
    ]
    homes = shipped_homes()  # as the CLI's default: form and pattern rules, 3 + 3 in service, 1 + 1 after
    kept = learn(LogView.from_records(three), art, config=LearnConfig(shadow=False), homes=homes).version
    with Store(tmp_path / "one.duckdb") as store:
        store.add(turns=repairs(range(6), 0))
    args = ["learn", "--db", str(tmp_path / "one.duckdb"), "--artifacts", str(art.root), "--json"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 1 and "--allow-shrink" in refused.stderr
    assert json.loads(refused.stdout)["refused"] and art.current() == kept
    forced = CliRunner().invoke(app, [*args, "--allow-shrink"])
    assert forced.exit_code == 0 and json.loads(forced.stdout)["published"] and art.current() != kept


def test_python_baseline_counts_the_same_chains() -> None:
    from selflearn.bench.learn import python_chain_counts
    from selflearn.learners.mining import MiningConfig, baseline_rephrase, chains
    from selflearn.learners.signals import DefectSignals
    from selflearn.sim.synthlogs import generate

    turns, _ = generate(5000, seed=8)
    slow = python_chain_counts(turns, MiningConfig())
    scored = DefectSignals().score_frame(turns)
    ch = chains(scored, baseline_rephrase(scored, MiningConfig()))
    fast = ch.filter(pl.col("target_form").is_not_null() & (pl.col("form") != pl.col("target_form")))
    counts = {(a, b): n for a, b, n in fast.group_by("form", "target_form").len().iter_rows()}
    overlap = sum(min(counts.get(k, 0), v) for k, v in slow.items())
    assert overlap / sum(slow.values()) > 0.9


@pytest.mark.slow
def test_learn_with_the_span_rephrase_model(tmp_path: Path) -> None:
    day = 86_400.0
    turns = repairs(range(6), 0) + repairs(range(6), 3600) + repairs(range(6), day)
    report = learn(
        LogView.from_records(turns),
        ArtifactStore(tmp_path),
        config=LearnConfig(learners=("signals", "span", "mining", "retrieval")),
    )
    assert report.rephrase_detector == "span_model" and report.published
    assert report.shadow is not None
    assert report.global_rewrites == 1


def maple_turn(runtime: Runtime, user: str, at: float, text: str, **update: object) -> Turn:
    """A turn as the shared runtime logs it in maple_house's kitchen (``update``: what the person did next)."""
    logged = runtime.interpret(text, user_id=user, endpoint_id="ep.kitchen_speaker", now=T0 + timedelta(seconds=at))
    return logged.turn.model_copy(update={"turn_id": f"{user}-{at}", **update})


def maple_repairs(runtime: Runtime, failing: str, repair: str, **update: object) -> list[Turn]:
    """Six people, a minute apart, each saying ``failing`` (``update``: how it failed) and then ``repair``."""
    turns = []
    for u in range(6):
        turns += [
            maple_turn(runtime, f"u{u}", 60 * u, failing, **update),
            maple_turn(runtime, f"u{u}", 60 * u + 5, repair),
        ]
    return turns


def test_replay_rejects_a_batch_that_rewrites_working_requests_into_wrong_ones(tmp_path: Path) -> None:
    """Six people who wanted the desk lamp teach a global rule "kitchen light" -> "desk lamp"; the next day the
    kitchen light works for everyone. The log-only estimate sees no harm (the intent stays HassTurnOn); the replay
    sees the resolved device change on every clean turn, rejects the batch and keeps the set in service. (The
    mining guards, one home and the area dropped, would stop this rule first: they are off, the replay is tested.)"""
    maple = load_home(SHIPPED_HOMES_DIR / "maple_house.yaml")
    runtime = Runtime(maple)
    day = 86_400.0
    training = maple_repairs(runtime, "turn on the kitchen light", "turn on the desk lamp", barge_in=True)
    held = [maple_turn(runtime, f"v{u}", day + 600 * u, "turn on the kitchen light") for u in range(20)]
    store = ArtifactStore(tmp_path)
    loose = MiningConfig(min_homes=1, hygiene=False)
    config = LearnConfig(mining=loose, shadow=False)
    first = learn(LogView.from_records(training), store, config=config, homes=[maple])
    assert first.published and first.global_rewrites == 1
    seen: list[pl.DataFrame] = []
    report = learn(
        LogView.from_records(training + held),
        store,
        config=LearnConfig(mining=loose),
        homes=[maple],
        on_shadow=lambda _tables, t: seen.append(t),
    )
    assert report.shadow is not None and not report.shadow.accepted and not report.published
    assert store.current() == first.version == report.version
    assert report.shadow.replayed == 20 and report.shadow.would_break == 20 and report.shadow.log_only == 0
    turns = seen[0]
    assert set(turns["candidate_text"]) == {"turn on the desk lamp"}
    assert turns["log_only_break"].sum() == 0  # the log-only estimate would have published it


def test_replay_counts_a_fix_only_when_the_rewrite_succeeds_as_wanted() -> None:
    from selflearn.learners.mining import RewriteTables
    from selflearn.learners.shadow import shadow_evaluate
    from selflearn.learners.signals import DefectSignals
    from selflearn.runtime.rewrites import REWRITE_SCHEMA

    maple = load_home(SHIPPED_HOMES_DIR / "maple_house.yaml")
    runtime = Runtime(maple)
    rule = {"probability": 0.9, "support": 9, "distinct_users": 6, "layer": "global", "user_id": None}
    rows = [
        {"source": "tern on the kitchen light", "target": "turn on the kitchen light", "target_intent": "HassTurnOn"},
        {"source": "lights kitchen", "target": "turn on the glorp", "target_intent": "HassTurnOn"},
        {"source": "kitchen light on", "target": "turn on the kitchen lite", "target_intent": "HassTurnOn"},
    ]
    table = pl.DataFrame([r | rule | {"source_intent": None} for r in rows], schema=REWRITE_SCHEMA)
    held = [
        maple_turn(runtime, "a", 0, "tern on the kitchen light"),  # no match: fixed
        maple_turn(runtime, "b", 600, "lights kitchen"),  # no match, and the rewrite finds no device either
        maple_turn(runtime, "c", 1200, "kitchen light on"),  # works, and still does: same lamp, not broken
        maple_turn(runtime, "d", 1800, "tern on the kitchen light"),  # ... but d repaired it into the desk lamp:
        maple_turn(runtime, "d", 1805, "turn on the desk lamp"),  # the kitchen light is not what d wanted
    ]
    view = LogView.from_records(held)
    scored = DefectSignals().score_frame(view.turns(), view.feedback())
    report = shadow_evaluate(RewriteTables(global_table=table), scored, "since", [maple])
    assert report.defects == 3 and report.replayed == 4
    assert report.would_fix == 1.0 and report.would_break == 0.0
    assert report.accepted and report.defect_rate_after < report.defect_rate_before
    fallback = shadow_evaluate(RewriteTables(global_table=table), scored, "since")  # no homes: log-only
    assert fallback.log_only == 5 and fallback.replayed == 0 and fallback.would_fix == pytest.approx(2.7)


def test_shadow_margin_tolerates_a_net_break_or_two_not_more() -> None:
    from selflearn.learners.learn import LearnConfig
    from selflearn.learners.shadow import shadow_accepts

    margin = LearnConfig().shadow_margin
    assert shadow_accepts(10.0, 10.0 + margin, margin) and not shadow_accepts(10.0, 10.5 + margin, margin)
    assert shadow_accepts(0.0, 0.0, 0) and not shadow_accepts(0.0, 1.0, 0)


def test_replay_does_not_count_an_unrepaired_failure_rewritten_into_another_request_as_fixed() -> None:
    """Six people repaired "tern on the kitchen light" into the kitchen light. A harmful batch rewrites it into
    "what time is it" (which succeeds) and the working kitchen light into the desk lamp. On the held-out day nobody
    repairs their failures, so only the other days' repairs say what the form wants (``repair_outcomes``: turning
    something on, by name): the clock is not it, the 20 failures stay unfixed, the 5 breaks stand and the batch is
    rejected (counted as fixes, it would pass); the right rule's 20 fixes are confirmed by the same evidence."""
    from selflearn.learners.mining import RewriteTables
    from selflearn.learners.shadow import repair_outcomes, shadow_turns, summarise_shadow
    from selflearn.learners.signals import DefectSignals
    from selflearn.runtime.rewrites import REWRITE_SCHEMA

    maple = load_home(SHIPPED_HOMES_DIR / "maple_house.yaml")
    runtime = Runtime(maple)
    day = 86_400.0
    training = maple_repairs(runtime, "tern on the kitchen light", "turn on the kitchen light")
    held = [maple_turn(runtime, f"v{u}", day + 600 * u, "tern on the kitchen light") for u in range(20)]
    held += [maple_turn(runtime, f"w{u}", day + 600 * u + 60, "turn on the kitchen light") for u in range(5)]
    view = LogView.from_records(training + held)
    scored = DefectSignals().score_frame(view.turns(), view.feedback())
    repaired = repair_outcomes(scored, [maple])
    wanted = repaired.filter(pl.col("form") == "tern on the kitchen light").select("intent", "slot_names")
    assert wanted.rows() == [("HassTurnOn", "name")]
    held_out = scored.filter(pl.col("ts") >= T0 + timedelta(seconds=day))
    rule = {"probability": 0.9, "support": 6, "distinct_users": 6, "layer": "global", "user_id": None}

    def shadow(rows: list[tuple[str, str, str]]) -> tuple[float, float, bool]:
        table = pl.DataFrame(
            [{"source": s, "target": t, "target_intent": i, "source_intent": None} | rule for s, t, i in rows],
            schema=REWRITE_SCHEMA,
        )
        turns = shadow_turns(RewriteTables(global_table=table), held_out, [maple], repaired=repaired)
        report = summarise_shadow(turns, "since", margin=2)
        return report.would_fix, report.would_break, report.accepted

    harmful = [
        ("tern on the kitchen light", "what time is it", "HassGetCurrentTime"),
        ("turn on the kitchen light", "turn on the desk lamp", "HassTurnOn"),
    ]
    assert shadow(harmful) == (0.0, 5.0, False)
    assert shadow([("tern on the kitchen light", "turn on the kitchen light", "HassTurnOn")]) == (20.0, 0.0, True)

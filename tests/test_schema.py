from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import selflearn.ids
from selflearn.schema import (
    ARROW_SCHEMAS,
    Feedback,
    Gold,
    Preference,
    Turn,
    from_arrow,
    read_jsonl,
    read_parquet,
    to_arrow,
    write_jsonl,
    write_parquet,
)

ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)
entity_ids = st.from_regex(selflearn.ids.CORE, fullmatch=True).filter(lambda s: len(s) <= selflearn.ids.MAX_LENGTH)
texts = st.text(max_size=60)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
json_dicts = st.dictionaries(texts, json_values, max_size=4)
timestamps = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC))
unit = st.floats(min_value=0.0, max_value=1.0)

turns = st.builds(
    Turn,
    turn_id=ids,
    dialogue_id=ids,
    session_id=ids,
    user_id=entity_ids,
    home_id=entity_ids,
    device_id=entity_ids,
    device_type=st.sampled_from(["speaker", "screen", "tv"]),
    ts=timestamps,
    area=st.none() | texts,
    asr_text=texts,
    asr_confidence=unit,
    rewritten_text=st.none() | texts,
    rewrite_source=st.sampled_from(["none", "global", "personal", "feedback", "teach"]),
    nlu_intent=st.none() | texts,
    nlu_slots=json_dicts,
    nlu_confidence=unit,
    resolved_entities=json_dicts,
    result_status=st.sampled_from(["success", "no_match", "no_entity", "failed", "feedback"]),
    response_text=texts,
    barge_in=st.booleans(),
    response_latency_ms=st.floats(min_value=0.0, max_value=600_000.0),
    device_state_snapshot=json_dicts,
    explicit_feedback=st.none() | st.sampled_from(["yes", "no", "correction", "unsatisfied"]),
    trace=json_dicts,
)
golds = st.builds(
    Gold,
    turn_id=ids,
    true_text=texts,
    true_intent=st.none() | texts,
    true_slots=json_dicts,
    failure_point=st.sampled_from(["false_wake", "asr", "nlu", "er", "result", "correct"]),
    goal_id=ids,
    goal_success=st.booleans(),
    is_rephrase_of=st.none() | ids,
    is_impossible=st.booleans(),
    annotator_labels=json_dicts,
)
feedbacks = st.builds(
    Feedback,
    feedback_id=ids,
    turn_id=ids,
    user_id=entity_ids,
    ts=timestamps,
    kind=st.sampled_from(["yes", "no", "correction", "teach"]),
    text=texts,
    correction_text=st.none() | texts,
)
preferences = st.builds(
    Preference,
    user_id=entity_ids,
    kind=st.sampled_from(["team", "cuisine", "place", "phrase"]),
    key=st.text(max_size=20),
    value=st.text(min_size=1, max_size=20),
    ts=timestamps,
)

CASES = [(Turn, turns), (Gold, golds), (Feedback, feedbacks), (Preference, preferences)]


@pytest.mark.parametrize(("kind", "strategy"), CASES, ids=[c[0].__name__ for c in CASES])
def test_jsonl_and_parquet_round_trip_exactly(kind, strategy, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    d: Path = tmp_path_factory.mktemp("rt")

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(strategy, max_size=4))
    def check(records: list) -> None:  # type: ignore[type-arg]
        write_jsonl(records, d / "a.jsonl")
        assert list(read_jsonl(d / "a.jsonl", kind)) == records
        write_parquet(records, d / "a.parquet", kind)
        back = read_parquet(d / "a.parquet", kind)
        assert back == records
        assert to_arrow(records, kind).schema == ARROW_SCHEMAS[kind]
        assert from_arrow(to_arrow(records, kind), kind) == records
        # Parquet stores JSON fields canonically (sorted keys), so from then on JSONL bytes are stable too.
        write_jsonl(back, d / "b.jsonl")
        write_parquet(list(read_jsonl(d / "b.jsonl", kind)), d / "b.parquet", kind)
        write_jsonl(read_parquet(d / "b.parquet", kind), d / "c.jsonl")
        assert (d / "c.jsonl").read_bytes() == (d / "b.jsonl").read_bytes()

    check()


MINIMAL_TURN: dict[str, object] = dict(
    turn_id="t",
    dialogue_id="d",
    session_id="s",
    user_id="u",
    home_id="h",
    device_id="e",
    device_type="speaker",
    ts=datetime(2026, 1, 1, tzinfo=UTC),
    asr_text="hi",
    asr_confidence=1.0,
    result_status="success",
    response_latency_ms=1.0,
)


def test_json_fields_accept_their_string_form() -> None:
    t = Turn.model_validate({**MINIMAL_TURN, "nlu_slots": '{"b": 1, "a": 2}'})
    assert t.nlu_slots == {"a": 2, "b": 1}
    assert to_arrow([t], Turn).column("nlu_slots")[0].as_py() == '{"a":2,"b":1}'


@pytest.mark.parametrize(
    "change",
    [
        {"ts": datetime(2026, 1, 1)},
        {"ts": datetime(3000, 1, 1, tzinfo=UTC)},
        {"asr_text": "x" * 10_001},
        {"response_latency_ms": -1.0},
        {"turn_id": ""},
        {"schema_version": 3},
        {"unknown": 1},
        {"user_id": "../../etc"},
        {"user_id": "x/../maple.ben"},
        {"home_id": "/abs"},
        {"device_id": ".hidden"},
        {"user_id": "a\x00b"},
    ],
)
def test_invalid_turns_rejected(change: dict[str, object]) -> None:
    Turn.model_validate(MINIMAL_TURN)
    with pytest.raises(ValidationError):
        Turn.model_validate({**MINIMAL_TURN, **change})


def test_a_turn_from_home_assistant_needs_no_device_type_asr_confidence_or_latency(tmp_path: Path) -> None:
    """Schema 2: what a real Home Assistant cannot supply is optional, and None survives JSONL and Parquet."""
    bare = {k: v for k, v in MINIMAL_TURN.items() if k not in ("device_type", "asr_confidence", "response_latency_ms")}
    t = Turn.model_validate(bare)
    assert (t.device_type, t.asr_confidence, t.response_latency_ms, t.schema_version) == (None, None, None, 2)
    write_jsonl([t], tmp_path / "t.jsonl")
    write_parquet([t], tmp_path / "t.parquet", Turn)
    assert list(read_jsonl(tmp_path / "t.jsonl", Turn)) == [t]
    assert read_parquet(tmp_path / "t.parquet", Turn) == [t]
    v1 = Turn.model_validate({**MINIMAL_TURN, "schema_version": 1})  # old logs stay readable
    assert v1.asr_confidence == 1.0

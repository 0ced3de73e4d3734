from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from selflearn.schema import RECORD_TYPES, Feedback, Gold, Turn, to_arrow
from selflearn.sim import logsample
from selflearn.store import fastpath

SAMPLE = logsample.generate(40, seed=9)
BASES = {
    Turn: [json.loads(t.model_dump_json()) for t in SAMPLE.turns],
    Gold: [json.loads(g.model_dump_json()) for g in SAMPLE.gold],
    Feedback: [json.loads(f.model_dump_json()) for f in SAMPLE.feedback] or None,
}

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00",
            "3000-01-01T00:00:00+00:00",
            "1999-12-31T23:59:59-05:00",
            "2026-06-01T12:00:00.123456789+02:00",
            "success",
            "speaker",
            "",
            "x" * 10_001,
            "0.5",
            "true",
            '{"a": 1}',
        ]
    ),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2),
    max_leaves=4,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([Turn, Gold]),
    st.integers(0, 39),
    st.lists(
        st.tuples(
            st.text(max_size=3) | st.sampled_from(list(Turn.model_fields) + list(Gold.model_fields)),
            values | st.just(...),
        ),
        max_size=3,
    ),
)
def test_fast_path_accepts_only_what_pydantic_accepts_identically(model, index, edits) -> None:  # type: ignore[no-untyped-def]
    row = dict(BASES[model][index])  # type: ignore[index]
    for key, value in edits:
        if value is ...:
            row.pop(key, None)
        else:
            row[key] = value
    line = json.dumps(row, allow_nan=True).encode()
    fast = fastpath.decode(model, line)
    if fast is None:
        return
    try:
        record = model.model_validate_json(line)
    except ValidationError as e:
        raise AssertionError(f"fast path accepted a line pydantic rejects: {e}") from e
    assert fastpath.to_table([fast], model).equals(to_arrow([record], model))


def test_fast_path_matches_pydantic_on_clean_sample() -> None:
    for kind in ("turns", "gold", "feedback"):
        model = RECORD_TYPES[kind]
        records = {"turns": SAMPLE.turns, "gold": SAMPLE.gold, "feedback": SAMPLE.feedback}[kind]
        fast = [fastpath.decode(model, r.model_dump_json().encode()) for r in records]
        assert all(f is not None for f in fast)
        assert fastpath.to_table(fast, model).equals(to_arrow(records, model))


def test_fast_path_range_checks_timestamps() -> None:
    row = json.loads(SAMPLE.turns[0].model_dump_json())
    assert fastpath.decode(Turn, json.dumps({**row, "ts": "2026-05-01T10:00:00+02:00"}).encode()) is not None
    fast = fastpath.decode(Turn, json.dumps({**row, "ts": "2026-05-01T10:00:00+02:00"}).encode())
    assert fast.ts.astimezone(UTC) == datetime(2026, 5, 1, 8, tzinfo=UTC)
    assert fastpath.decode(Turn, json.dumps({**row, "ts": "3000-01-01T00:00:00Z"}).encode()) is None
    assert fastpath.decode(Turn, json.dumps({**row, "ts": "2026-01-01T00:00:00"}).encode()) is None
    assert fastpath.decode(Turn, json.dumps({**row, "nlu_slots": "{}"}).encode()) is None  # string form: pydantic's


def test_fast_path_agrees_on_timestamp_spellings() -> None:
    row = json.loads(SAMPLE.turns[0].model_dump_json())
    for ts in (
        "2026-06-01T12:00:00.123456789+02:00",
        "2026-06-01T12:00:00.1234565Z",
        "2026-06-01T12:00:00.5Z",
        "2026-06-01T12:00:00+05:30",
        "2026-06-01 12:00:00Z",
        "2026-06-01T12:00Z",
        "20260601T120000Z",
    ):
        line = json.dumps({**row, "ts": ts}).encode()
        fast = fastpath.decode(Turn, line)
        if fast is not None:
            assert fastpath.to_table([fast], Turn).equals(to_arrow([Turn.model_validate_json(line)], Turn)), ts

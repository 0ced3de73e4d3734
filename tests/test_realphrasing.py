"""The ``realphrasing`` suite: eval-only SLURP data and the SLURP -> runtime mapping (no eval text in any index:
tests/test_retrieval.py)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

import selflearn
from selflearn.eval.suites.realphrasing import (
    DATA,
    HOME,
    MAPPING,
    Row,
    device_action,
    eval_texts,
    load_rows,
    right_intent,
    subsample,
)
from selflearn.home import Home, load_home
from selflearn.runtime.runtime import Runtime
from selflearn.schema import Turn
from selflearn.text import normalize

NOW = datetime(2026, 1, 5, 18, tzinfo=UTC)
SPEAKER = "ep.living_speaker"


@pytest.fixture(scope="module")
def home() -> Home:
    return load_home(HOME)


def _row(text: str, intent: str, scenario: str = "iot", **entities: str) -> Row:
    return Row(text, "devel", "home", scenario, intent, dict(entities))


def test_eval_data_is_the_odd_devel_rows_and_the_asr_pairs_only() -> None:
    with gzip.open(DATA, "rt", encoding="utf-8") as f:
        raw = [json.loads(line) for line in f]
    assert {r["source"] for r in raw} == {"devel", "asr_ref", "asr_hyp"}
    assert all(r["id"] % 2 == 1 for r in raw if r["source"] == "devel")
    assert all(r["id"] % 2 == 0 for r in raw if r["source"] != "devel")  # the shared pairs are even recordings
    assert {r["scope"] for r in raw} == {"home", "out"}
    readme = (DATA.parent / "README.md").read_text(encoding="utf-8")
    assert "realphrasing_eval.jsonl.gz" in readme and "EVALUATION ONLY" in readme


def test_no_simulated_wording_is_an_eval_text() -> None:
    phrasings = DATA.parent / "phrasings.jsonl"
    templates = {json.loads(line)["template"] for line in phrasings.read_text(encoding="utf-8").splitlines()}
    plain = {normalize(t) for t in templates if "{" not in t}
    assert plain and not plain & eval_texts()


def test_no_learner_reads_the_eval_data() -> None:
    src = Path(selflearn.__file__).parent
    readers = [p for p in src.rglob("*.py") if "realphrasing_eval" in p.read_text(encoding="utf-8")]
    assert [p.relative_to(src).as_posix() for p in readers] == ["eval/suites/realphrasing.py"]


def test_rows_keep_only_mapped_home_intents() -> None:
    rows = load_rows()
    assert {r.scope for r in rows} == {"home", "out"}
    assert all(r.intent in MAPPING or r.intent == "query" for r in rows if r.scope == "home")
    assert not any(r.intent == "datetime_convert" for r in rows)
    picked = subsample(rows, 5, seed=1)
    assert len(picked) == 30 and picked == subsample(rows, 5, seed=1)


def test_right_intent_checks_intent_device_kind_room_and_direction(home: Home) -> None:
    runtime = Runtime(home)

    def turn(text: str) -> Turn:
        return runtime.interpret(text, user_id="willow.sam", endpoint_id=SPEAKER, now=NOW).turn

    assert right_intent(_row("x", "iot_hue_lightoff"), turn("turn off the kitchen lights"), home)
    assert right_intent(_row("x", "iot_hue_lightoff", house_place="kitchen"), turn("turn off the kitchen lights"), home)
    assert not right_intent(
        _row("x", "iot_hue_lightoff", house_place="bedroom"), turn("turn off the kitchen lights"), home
    )
    assert not right_intent(_row("x", "iot_hue_lightoff"), turn("turn off the smart plug"), home)  # not a light
    assert right_intent(_row("x", "iot_wemo_off"), turn("turn off the smart plug"), home)
    assert right_intent(_row("x", "audio_volume_up", "audio"), turn("turn up the volume"), home)
    assert not right_intent(_row("x", "audio_volume_down", "audio"), turn("turn up the volume"), home)
    assert right_intent(_row("x", "query", "weather"), turn("what's the weather"), home)
    assert not right_intent(_row("x", "datetime_query", "datetime"), turn("what's the weather"), home)


def test_a_device_action_is_a_change_of_state(home: Home) -> None:
    runtime = Runtime(home)
    assert device_action(runtime.interpret("make coffee", user_id="willow.sam", endpoint_id=SPEAKER, now=NOW))
    assert not device_action(runtime.interpret("what time is it", user_id="willow.sam", endpoint_id=SPEAKER, now=NOW))

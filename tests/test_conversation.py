"""Home Assistant's conversation input through the runtime: household users, endpoints, abstaining, languages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from selflearn import ids
from selflearn.home import find_home
from selflearn.integrations.conversation import (
    ConversationInput,
    ResultReport,
    converse,
    endpoint_for,
    household_user,
    with_result,
)
from selflearn.runtime.runtime import Runtime
from selflearn.sim.homes import generate_homes

NOW = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)


@given(st.text(max_size=300) | st.none())
def test_any_satellite_or_device_id_gives_a_valid_path_safe_user_id(source: str | None) -> None:
    user = household_user("maple_house", source)
    assert ids.is_valid(user) and "/" not in user and "\\" not in user
    assert user.startswith("maple_house.household")
    assert household_user("maple_house", source) == user  # stable: the same satellite is the same user


def test_plain_ids_stay_readable_and_others_are_hashed_apart() -> None:
    assert household_user("h", "assist_satellite.kitchen") == "h.household.assist_satellite.kitchen"
    assert household_user("h", None) == "h.household"
    assert household_user("h", "../x") != household_user("h", "../y")
    assert household_user("h", ".hidden").startswith("h.household.h")  # no leading dot


def test_listed_satellites_give_room_context_and_unlisted_ones_none() -> None:
    home = find_home("maple_house")
    assert endpoint_for(home, "ep.bedroom_speaker", "dev1").area == "bedroom"
    assert endpoint_for(home, None, "ep.office_speaker").area == "office"  # a device id may name it too
    unplaced = endpoint_for(home, "assist_satellite.hall", "dev1")
    assert (unplaced.id, unplaced.area, unplaced.type) == ("assist_satellite.hall", None, None)


def test_a_home_nobody_tuned_on_is_answered_with_its_own_device_names() -> None:
    home = generate_homes(1, seed=4242)[0]
    runtime = Runtime(home)
    endpoint = home.endpoints[0]
    device = next(d for d in home.devices if d.domain == "light" and d.area == endpoint.area)
    reply = converse(runtime, ConversationInput(text=f"turn on the {device.name}", satellite_id=endpoint.id), NOW)
    assert not reply.abstained and not reply.handled
    assert [(i.name, i.entities.get("name")) for i in reply.intents] == [("HassTurnOn", device.name)]
    assert reply.turn.user_id == household_user(home.id, endpoint.id) and reply.turn.area == endpoint.area


def test_not_understood_abstains_and_nothing_is_sent_to_carry_out() -> None:
    runtime = Runtime(find_home("maple_house"))
    reply = converse(runtime, ConversationInput(text="purple monkey dishwasher sideways"), NOW)
    assert reply.abstained and reply.intents == [] and reply.turn.result_status == "no_match"
    assert reply.speech


def test_other_languages_and_bad_input_are_refused_clearly() -> None:
    runtime = Runtime(find_home("maple_house"))
    assert not converse(runtime, ConversationInput(text="turn on the tv", language="en-GB"), NOW).abstained
    bad_input = ({"text": ""}, {"text": "x" * 1001}, {"text": "hi", "speaker": "ana"}, {"text": 3}, {"text": "Licht an",
                 "language": "de"})  # fmt: skip
    for bad in bad_input:
        with pytest.raises(ValidationError):
            ConversationInput.model_validate(bad)


def test_has_result_failure_makes_a_done_turn_failed_once_and_success_keeps_it() -> None:
    runtime = Runtime(find_home("maple_house"))
    turn = converse(runtime, ConversationInput(text="turn on the desk lamp"), NOW).turn
    failed = with_result(turn, ResultReport(turn_id=turn.turn_id, success=False, error_code="no_valid_targets",
                                            speech="No device or entity named Desk Lamp"))  # fmt: skip
    assert (failed.result_status, failed.response_text) == ("failed", "No device or entity named Desk Lamp")
    assert failed.trace == {**turn.trace, "ha_result": {"success": False, "error_code": "no_valid_targets"}}
    ok = with_result(turn, ResultReport(turn_id=turn.turn_id, success=True))
    assert (ok.result_status, ok.response_text) == ("success", turn.response_text)
    assert ok.trace["ha_result"] == {"success": True, "error_code": None}
    with pytest.raises(ValueError, match="no unreported intents"):
        with_result(failed, ResultReport(turn_id=turn.turn_id, success=True))  # reported already
    not_understood = converse(runtime, ConversationInput(text="purple monkey dishwasher sideways"), NOW).turn
    with pytest.raises(ValueError, match="status no_match"):
        with_result(not_understood, ResultReport(turn_id=not_understood.turn_id, success=False))
    for bad in ({"turn_id": "t", "success": False, "error_code": "../x"}, {"turn_id": "", "success": True},
                {"turn_id": "t", "success": True, "extra": 1}, {"turn_id": "t", "success": "maybe"}):  # fmt: skip
        with pytest.raises(ValidationError):
            ResultReport.model_validate(bad)

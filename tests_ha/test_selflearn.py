"""selflearn as the conversation agent of a real Home Assistant core, talking to a real selflearn service."""

from __future__ import annotations

from typing import Any

from custom_components.selflearn.const import DOMAIN
from homeassistant.components import conversation
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import Context, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import intent
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .conftest import SelflearnService

# HA entities named as in maple_house.yaml (Kitchen Light's selflearn alias "ceiling light" is unknown to HA), and
# one the home file lacks (the Porch Light: only HA's own agent can turn it on).
LIGHTS = {
    "kitchen_light": ("Kitchen Light", "Kitchen"),
    "island_pendant": ("Island Pendant", "Kitchen"),
    "porch_light": ("Porch Light", "Garage"),
}
KITCHEN = "ep.kitchen_speaker"  # the home file's kitchen satellite, as HA's device id


async def _home(hass: HomeAssistant) -> None:
    """HA with template lights (optimistic) in areas, and HA's conversation and intent handlers."""
    assert await async_setup_component(hass, "homeassistant", {})
    lights = {
        object_id: {"friendly_name": name, "unique_id": object_id, "turn_on": [], "turn_off": []}
        for object_id, (name, _) in LIGHTS.items()
    }
    assert await async_setup_component(hass, "light", {"light": [{"platform": "template", "lights": lights}]})
    assert await async_setup_component(hass, "conversation", {})
    assert await async_setup_component(hass, "intent", {})
    await hass.async_block_till_done()
    areas, entities = ar.async_get(hass), er.async_get(hass)
    for object_id, (_, area_name) in LIGHTS.items():
        area = areas.async_get_area_by_name(area_name) or areas.async_create(area_name)
        entities.async_update_entity(f"light.{object_id}", area_id=area.id)
    for object_id in LIGHTS:
        assert hass.states.get(f"light.{object_id}").state == "off"


async def _agent(hass: HomeAssistant, service: SelflearnService) -> str:
    entry = MockConfigEntry(domain=DOMAIN, data={CONF_HOST: "127.0.0.1", CONF_PORT: service.port})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry.entry_id


async def _say(hass: HomeAssistant, text: str, agent_id: str) -> intent.IntentResponse:
    result = await conversation.async_converse(hass, text, None, Context(), "en", agent_id, KITCHEN)
    return result.response


def _speech(response: intent.IntentResponse) -> str:
    return str(response.speech.get("plain", {}).get("speech", ""))


async def test_selflearn_understands_what_has_own_agent_does_not_and_has_light_turns_on(
    hass: HomeAssistant, selflearn_service: SelflearnService
) -> None:
    await _home(hass)
    agent = await _agent(hass, selflearn_service)
    own = await _say(hass, "switch on the ceiling light", conversation.HOME_ASSISTANT_AGENT)
    assert own.response_type == intent.IntentResponseType.ERROR  # HA knows no "ceiling light"
    response = await _say(hass, "switch on the ceiling light", agent)
    await hass.async_block_till_done()
    assert response.response_type == intent.IntentResponseType.ACTION_DONE, _speech(response)
    assert [t.id for t in response.success_results] == ["light.kitchen_light"]
    assert hass.states.get("light.kitchen_light").state == "on"
    assert hass.states.get("light.island_pendant").state == "off"

    # not understood by selflearn: HA's built-in agent answers (and acts) instead
    fallback = await _say(hass, "turn on the porch light", agent)
    await hass.async_block_till_done()
    assert fallback.response_type == intent.IntentResponseType.ACTION_DONE, _speech(fallback)
    assert hass.states.get("light.porch_light").state == "on"
    turns = await hass.async_add_executor_job(selflearn_service.stopped_turns)
    assert [t["result_status"] for t in turns] == ["success", "no_entity"]
    assert all('"ha_result":{"error_code":null,"success":true}' in t["trace"] for t in turns[:1])


async def test_a_result_failure_in_ha_is_reported_and_stored_on_the_turn(
    hass: HomeAssistant, selflearn_service: SelflearnService
) -> None:
    await _home(hass)
    agent = await _agent(hass, selflearn_service)
    response = await _say(hass, "turn on the desk lamp", agent)  # in selflearn's home file, not in HA
    assert response.response_type == intent.IntentResponseType.ERROR
    assert response.error_code == intent.IntentResponseErrorCode.NO_VALID_TARGETS
    (turn,) = await hass.async_add_executor_job(selflearn_service.stopped_turns)
    assert (turn["asr_text"], turn["nlu_intent"], turn["result_status"]) == (
        "turn on the desk lamp",
        "HassTurnOn",
        "failed",
    )
    assert '"ha_result":{"error_code":"no_valid_targets","success":false}' in turn["trace"]
    assert turn["response_text"] == _speech(response)


async def test_after_a_rephrase_chain_and_learn_the_first_wording_works_through_ha(
    hass: HomeAssistant, selflearn_service: SelflearnService
) -> None:
    await _home(hass)
    agent = await _agent(hass, selflearn_service)
    for _ in range(3):  # >= the personal-rule support (2) of this satellite's household user
        failed = await _say(hass, "switch on the cooking light", agent)
        assert failed.response_type == intent.IntentResponseType.ERROR  # neither selflearn nor HA's agent
        worked = await _say(hass, "turn on the kitchen light", agent)
        assert worked.response_type == intent.IntentResponseType.ACTION_DONE, _speech(worked)
        await hass.services.async_call("light", "turn_off", {"entity_id": "light.kitchen_light"}, blocking=True)
    learned = await hass.async_add_executor_job(selflearn_service.learn)
    assert learned["version"], learned
    assert hass.states.get("light.kitchen_light").state == "off"
    response = await _say(hass, "switch on the cooking light", agent)
    await hass.async_block_till_done()
    assert response.response_type == intent.IntentResponseType.ACTION_DONE, _speech(response)
    assert hass.states.get("light.kitchen_light").state == "on"


async def test_a_taught_phrase_is_handled_then_runs_every_intent_in_ha(
    hass: HomeAssistant, selflearn_service: SelflearnService
) -> None:
    await _home(hass)
    agent = await _agent(hass, selflearn_service)
    taught = await _say(
        hass, "when I say cooking time I mean turn on the kitchen light and turn on the pendant lights", agent
    )
    assert taught.response_type == intent.IntentResponseType.ACTION_DONE and _speech(taught)
    assert hass.states.get("light.kitchen_light").state == "off"  # teaching only: nothing was run
    night = await _say(hass, "cooking time", agent)
    await hass.async_block_till_done()
    assert night.response_type == intent.IntentResponseType.ACTION_DONE, _speech(night)
    assert hass.states.get("light.kitchen_light").state == "on"
    assert hass.states.get("light.island_pendant").state == "on"
    turns = await hass.async_add_executor_job(selflearn_service.stopped_turns)
    assert [t["result_status"] for t in turns] == ["teach", "success"]
    assert '"ha_result":{"error_code":null,"success":true}' in turns[1]["trace"]


async def test_with_selflearn_unreachable_has_own_agent_answers(
    hass: HomeAssistant, socket_enabled: Any, unused_tcp_port: int
) -> None:
    await _home(hass)
    entry = MockConfigEntry(domain=DOMAIN, data={CONF_HOST: "127.0.0.1", CONF_PORT: unused_tcp_port})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    response = await _say(hass, "turn on the kitchen light", entry.entry_id)
    await hass.async_block_till_done()
    assert response.response_type == intent.IntentResponseType.ACTION_DONE, _speech(response)
    assert hass.states.get("light.kitchen_light").state == "on"


async def test_the_config_flow_accepts_a_selflearn_service_only(
    hass: HomeAssistant, selflearn_service: SelflearnService, unused_tcp_port: int
) -> None:
    flow: Any = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert flow["type"] == FlowResultType.FORM
    closed = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: unused_tcp_port}
    )
    assert closed["errors"] == {"base": "cannot_connect"}
    created = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: selflearn_service.port}
    )
    assert created["type"] == FlowResultType.CREATE_ENTRY
    assert created["data"] == {CONF_HOST: "127.0.0.1", CONF_PORT: selflearn_service.port}

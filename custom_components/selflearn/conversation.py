"""The conversation agent: selflearn understands over Wyoming, HA's own intent handlers act, the result goes back.

One request is one TCP connection, as in HA's Wyoming conversation entity: ``transcript`` (text, language, context
``{conversation_id, device_id, satellite_id}``) in; ``intent`` (or ``intents-start`` / ``intent``... /
``intents-stop``), ``handled``, ``not-recognized`` or ``error`` out. The intents run in order with
``intent.async_handle`` on HA's entities; the first failure stops the rest. Then, on the same connection,
``intent-result`` tells selflearn how it went (the turn id comes in the intent's context), so an intent HA could not
carry out makes the logged turn ``failed`` and a defect signal for learning. What selflearn does not understand
(``not-recognized``), refuses (``error``) or cannot be reached for goes to HA's built-in agent instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from homeassistant.components import conversation
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_HOST, CONF_PORT, MATCH_ALL
from homeassistant.core import HomeAssistant
from homeassistant.helpers import intent
from homeassistant.util import ulid
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled
from wyoming.intent import Intent, NotRecognized

from .const import DOMAIN, RECORDED_EVENT, RESULT_EVENT, TIMEOUT_SECONDS

_LOGGER = logging.getLogger(__name__)
# by name: wyoming < 1.6 (HA 2024.3 pins 1.5.3) has no classes for them, nor a language in its Transcript
TRANSCRIPT, INTENTS_START, INTENTS_STOP = "transcript", "intents-start", "intents-stop"
# "No entity matched" errors, named differently across HA versions (NoStatesMatchedError in 2024.3,
# MatchFailedError in later ones): HA's no_valid_targets; any other intent error is failed_to_handle.
NO_TARGET_ERRORS: tuple[type[Exception], ...] = tuple(
    getattr(intent, name)
    for name in ("NoStatesMatchedError", "MatchFailedError", "DuplicateNamesMatchedError")
    if hasattr(intent, name)
)


@dataclass
class Answer:
    """What selflearn answered one transcript with."""

    intents: list[Intent] = field(default_factory=list)  # to run in order; empty unless selflearn understood
    speech: str | None = None  # selflearn's own answer (handled: teaching, feedback)
    fallback: str | None = None  # why HA's built-in agent answers instead (not recognized, error); None otherwise


class SelflearnAgent(conversation.AbstractConversationAgent):
    """A config entry's selflearn service as a conversation agent."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry) -> None:
        self.hass = hass
        self.host: str = entry.data[CONF_HOST]
        self.port: int = entry.data[CONF_PORT]

    @property
    def supported_languages(self) -> list[str] | Literal["*"]:
        """Every language: selflearn answers English itself and sends the rest back (``error``) to HA's agent."""
        return MATCH_ALL

    async def async_process(self, user_input: conversation.ConversationInput) -> conversation.ConversationResult:
        """Ask selflearn, run its intents with HA's handlers and report how that went; else HA's built-in agent."""
        conversation_id = user_input.conversation_id or ulid.ulid_now()
        satellite_id = getattr(user_input, "satellite_id", None)  # HA 2024.10+
        context = {"conversation_id": conversation_id}
        context |= {k: v for k, v in (("device_id", user_input.device_id), ("satellite_id", satellite_id)) if v}
        client = AsyncTcpClient(self.host, self.port)
        try:
            # the timeout bounds the exchange with selflearn only: HA's handlers take the time they need
            async with asyncio.timeout(TIMEOUT_SECONDS):
                await client.connect()
                transcript = {"text": user_input.text, "language": user_input.language, "context": context}
                await client.write_event(Event(TRANSCRIPT, transcript))  # wyoming < 1.6's Transcript has no language
                answer = await _read_answer(client)
            if answer.intents:  # from here on HA acts: never fall back (it would act twice)
                response = await self._run(user_input, answer.intents, satellite_id)
                await _report(client, answer.intents[0], response)
                return conversation.ConversationResult(response=response, conversation_id=conversation_id)
        except (OSError, TimeoutError) as err:
            answer = Answer(fallback=f"selflearn at {self.host}:{self.port} unreachable: {err or type(err).__name__}")
        finally:
            with contextlib.suppress(OSError):
                await client.disconnect()
        if answer.fallback is not None:
            _LOGGER.debug("HA's built-in agent answers %r: %s", user_input.text, answer.fallback)
            return await self._fallback(user_input, conversation_id, satellite_id)
        response = intent.IntentResponse(language=user_input.language)
        response.async_set_speech(answer.speech or "")
        return conversation.ConversationResult(response=response, conversation_id=conversation_id)

    async def _run(
        self, user_input: conversation.ConversationInput, intents: list[Intent], satellite_id: str | None
    ) -> intent.IntentResponse:
        """Run the intents in order with HA's handlers; the first failure ends it as an error response."""
        responses: list[intent.IntentResponse] = []
        for recognized in intents:
            slots = {e.name: {"value": e.value} for e in recognized.entities}
            optional = {"device_id": user_input.device_id, "satellite_id": satellite_id}  # newer HA only
            try:
                response = await intent.async_handle(
                    self.hass,
                    DOMAIN,
                    recognized.name,
                    slots,
                    text_input=user_input.text,
                    context=user_input.context,
                    language=user_input.language,
                    **_accepted(intent.async_handle, optional),
                )
            except NO_TARGET_ERRORS as err:
                return _error(user_input, intent.IntentResponseErrorCode.NO_VALID_TARGETS, err)
            except intent.IntentError as err:
                return _error(user_input, intent.IntentResponseErrorCode.FAILED_TO_HANDLE, err)
            if response.response_type == intent.IntentResponseType.ERROR:
                return response
            if not response.speech and recognized.text:
                response.async_set_speech(recognized.text)
            responses.append(response)
        first = responses[0]
        speech = [s for r in responses if (s := r.speech.get("plain", {}).get("speech"))]
        if len(responses) > 1 and speech:
            first.async_set_speech("\n".join(speech))
        return first

    async def _fallback(
        self, user_input: conversation.ConversationInput, conversation_id: str, satellite_id: str | None
    ) -> conversation.ConversationResult:
        """HA's built-in agent on the same input (its sentences, its areas and aliases)."""
        return await conversation.async_converse(
            self.hass,
            user_input.text,
            conversation_id,
            user_input.context,
            language=user_input.language,
            agent_id=conversation.HOME_ASSISTANT_AGENT,
            **_accepted(conversation.async_converse, {"device_id": user_input.device_id, "satellite_id": satellite_id}),
        )


async def _read_answer(client: AsyncTcpClient) -> Answer:
    """Read selflearn's answer to a transcript: one intent, an intents list, or a reply without intents."""
    answer = Answer()
    in_list = False
    while (event := await client.read_event()) is not None:
        if event.type == INTENTS_START:
            in_list = True
        elif Intent.is_type(event.type):
            answer.intents.append(Intent.from_event(event))
            if not in_list:
                return answer
        elif event.type == INTENTS_STOP:
            return answer
        elif Handled.is_type(event.type):
            answer.speech = Handled.from_event(event).text
            return answer
        elif NotRecognized.is_type(event.type):
            return Answer(fallback=f"not recognized: {NotRecognized.from_event(event).text}")
        elif Error.is_type(event.type):
            error = Error.from_event(event)
            return Answer(fallback=f"error {error.code}: {error.text}")
    raise OSError("selflearn closed the connection before answering")


async def _report(client: AsyncTcpClient, first: Intent, response: intent.IntentResponse) -> None:
    """Tell selflearn how running the turn's intents went; a report that fails is a log line, never an error."""
    turn_id = (first.context or {}).get("turn_id")
    if not turn_id:
        return  # a selflearn that predates result reports
    failed = response.response_type == intent.IntentResponseType.ERROR
    result = {
        "turn_id": turn_id,
        "success": not failed,
        "error_code": response.error_code.value if failed and response.error_code else None,
        "speech": response.speech.get("plain", {}).get("speech", "")[:1000],
    }
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            await client.write_event(Event(RESULT_EVENT, result))
            ack = await client.read_event()
    except (OSError, TimeoutError) as err:
        _LOGGER.warning("could not report the result of turn %s to selflearn: %s", turn_id, err or type(err).__name__)
        return
    if ack is None or ack.type != RECORDED_EVENT:
        _LOGGER.warning("selflearn did not record the result of turn %s: %s", turn_id, ack and ack.data)


def _error(
    user_input: conversation.ConversationInput, code: intent.IntentResponseErrorCode, err: Exception
) -> intent.IntentResponse:
    response = intent.IntentResponse(language=user_input.language)
    response.async_set_error(code, str(err) or "Sorry, I couldn't do that.")
    return response


def _accepted(function: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments ``function`` takes in this HA version (device_id, satellite_id came later), set ones."""
    parameters = inspect.signature(function).parameters
    return {k: v for k, v in kwargs.items() if v is not None and k in parameters}

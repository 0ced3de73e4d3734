"""Home Assistant's conversation input through the runtime: who spoke, where, and what to hand back to HA.

HA's voice satellites do not identify speakers, so a request belongs to a *household user* per satellite (or, when
HA names no satellite, per device): ``<home id>.household.<satellite or device id>``, and ``<home id>.household``
for a request from neither (text typed into HA's Assist dialog). Ids that are not plain (``[A-Za-z0-9_.:-]``, at
most 48 characters, no leading dot) are replaced by a hash, so whatever a client sends, the user id is valid and
safe to become a per-user folder name. That household user gets the usual per-user memory: taught preferences,
personal rewrites, and rephrase links between its turns, so a satellite's repairs feed ``learn``.

The microphone is the home file's endpoint whose id is HA's satellite id (or device id), which gives the runtime
its area context; a satellite the home file does not list is an endpoint with no area and no type. Every request
runs through the one Runtime and is logged as a Turn (no ASR confidence: HA passes only text).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from selflearn import ids
from selflearn.home import Endpoint, Home
from selflearn.integrations.intents import HaIntent, to_ha
from selflearn.runtime.runtime import Runtime
from selflearn.schema import Turn

MAX_TEXT_CHARS = 1000
LANGUAGES = ("en",)  # the NLU's templates are English
LANGUAGE_PATTERN = r"^[Ee][Nn](?:[-_][A-Za-z0-9]{1,8}){0,3}$"
HANDLED_STATUSES = ("teach", "feedback")  # the teacher answered: nothing for HA to carry out
ERROR_CODE_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"  # HA's IntentResponseErrorCode values: no_valid_targets, ...


class ConversationInput(BaseModel):
    """HA's conversation input as an agent gets it (``ConversationInput``; the Wyoming ``Transcript`` carries the
    same text, language and context)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, description="What was said (HA's STT text).")
    language: str = Field(
        default="en", pattern=LANGUAGE_PATTERN, description="BCP 47 tag; English only (en, en-US, ...)."
    )
    conversation_id: str | None = Field(default=None, max_length=200, description="HA's chat session id.")
    device_id: str | None = Field(default=None, max_length=200, description="HA device that heard it, if any.")
    satellite_id: str | None = Field(default=None, max_length=200, description="HA assist satellite entity, if any.")
    agent_id: str | None = Field(default=None, max_length=200, description="The agent HA addressed (informational).")


@dataclass(frozen=True)
class Reply:
    """selflearn's answer to one HA request."""

    intents: list[HaIntent]
    """What HA should carry out, in order; empty when abstained or handled."""
    speech: str
    """What to say: the runtime's response (HA speaks it unless an intent handler has its own)."""
    abstained: bool
    """Not understood or not doable here: HA answers with an error, nothing to carry out."""
    handled: bool
    """selflearn answered by itself (teaching, feedback on the last answer): HA only speaks it."""
    turn: Turn
    """The logged turn (user_id is the household user, device_id the endpoint)."""


class ResultReport(BaseModel):
    """What HA reports after carrying out a turn's intents: the outcome the user actually got."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    turn_id: str = Field(min_length=1, max_length=128, description="The turn whose intents HA ran (intent context).")
    success: bool = Field(description="Every intent of the turn was handled without error.")
    error_code: str | None = Field(
        default=None, pattern=ERROR_CODE_PATTERN, description="HA's error code of the first failed intent."
    )
    speech: str = Field(default="", max_length=MAX_TEXT_CHARS, description="What HA answered the user.")


def with_result(turn: Turn, report: ResultReport) -> Turn:
    """The turn as HA carried it out. A failed intent makes it ``failed`` (a no-result defect signal for the
    learners, as a failure on a simulated device is); HA's report is kept in the trace. ValueError for a turn that
    sent HA nothing to carry out or was reported already (a report never rewrites history twice)."""
    if turn.result_status != "success" or "ha_result" in turn.trace:
        raise ValueError(f"turn {turn.turn_id!r} has no unreported intents (status {turn.result_status})")
    outcome = {"success": report.success, "error_code": None if report.success else report.error_code or "unknown"}
    update: dict[str, object] = {"trace": {**turn.trace, "ha_result": outcome}}
    if not report.success:
        update |= {"result_status": "failed", "response_text": report.speech or turn.response_text}
    return turn.model_copy(update=update)


def household_user(home_id: str, source: str | None) -> str:
    """The user a request without an identified speaker belongs to: one per satellite or device of a home."""
    return f"{_plain(home_id)}.household" + ("" if source is None else f".{_plain(source)}")


def endpoint_for(home: Home, satellite_id: str | None, device_id: str | None) -> Endpoint:
    """The home file's endpoint named by HA's satellite or device id, else an unplaced stand-in (no area context)."""
    for source in (satellite_id, device_id):
        for endpoint in home.endpoints:
            if source and endpoint.id == source:
                return endpoint
    source = satellite_id or device_id
    return Endpoint(id=_plain(source) if source else "home-assistant", name="satellite" if source else "assistant")


def converse(runtime: Runtime, request: ConversationInput, now: datetime | None = None) -> Reply:
    """Run one HA request through the runtime (rewrites, context, taught preferences) and log it as a Turn."""
    home = runtime.home
    endpoint = endpoint_for(home, request.satellite_id, request.device_id)
    result = runtime.interpret(
        request.text,
        user_id=household_user(home.id, request.satellite_id or request.device_id or None),
        endpoint_id=endpoint.id,
        endpoint=endpoint,
        now=now or datetime.now(UTC),
        asr_confidence=None,
        session_id=_plain(request.conversation_id) if request.conversation_id else None,
    )
    handled = result.turn.result_status in HANDLED_STATUSES
    intents = [
        to_ha(act.reading, act.resolution, home)
        for act in result.acts
        if act.reading is not None and act.outcome.status == "success"
    ]
    return Reply(intents, result.response, not intents and not handled, handled, result.turn)


def _plain(value: str) -> str:
    return value if ids.is_valid(value) and len(value) <= 48 else "h" + hashlib.sha256(value.encode()).hexdigest()[:16]

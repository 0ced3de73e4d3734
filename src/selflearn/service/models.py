"""The HTTP service's request and response bodies: what the OpenAPI schema promises clients, checked by pydantic."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from selflearn.ids import Id
from selflearn.schema import Preference, PreferenceKind, Turn
from selflearn.teach.statements import TASTE_KINDS, vocabulary

# ISO 8601 with a zone, years 2000-2099, only real calendar days (Feb 29 is left out for a simple exact pattern),
# so that every string the OpenAPI schema allows is accepted: the fuzz test holds the service to its schema. The
# instant must stay inside the records' UTC range too, so on 2000-01-01 no offset east of UTC is allowed and on
# 2099-12-31 none west. Built from alternatives: pydantic's regex engine has no lookaround.
_CLOCK = r"T(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:[.][0-9]{1,6})?)?"
_ZONE = r"(?:Z|[+-](?:0[0-9]|1[0-3]):[0-5][0-9])"
_DAY = r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
_DAY_AFTER_JAN_1 = (
    r"(?:01-(?:0[2-9]|[12][0-9]|3[01])|(?:0[2-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[3-9]|1[0-2])-(?:29|30)"
    r"|(?:0[3578]|1[02])-31)"
)
_DAY_BEFORE_DEC_31 = r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|10)-31)"
TIME_PATTERN = (
    rf"^(?:20(?:0[1-9]|[1-8][0-9]|9[0-8])-{_DAY}{_CLOCK}{_ZONE}"
    rf"|2000-{_DAY_AFTER_JAN_1}{_CLOCK}{_ZONE}|2000-01-01{_CLOCK}(?:Z|[+]00:00|-(?:0[0-9]|1[0-3]):[0-5][0-9])"
    rf"|2099-{_DAY_BEFORE_DEC_31}{_CLOCK}{_ZONE}|2099-12-31{_CLOCK}(?:Z|-00:00|[+](?:0[0-9]|1[0-3]):[0-5][0-9]))$"
)
PATTERN_HINTS = {
    "time": "expected ISO 8601 with a zone in the years 2000-2099 (UTC), e.g. 2026-11-25T18:00:00Z",
    "scope": "expected * or a home id",
}
Time = Annotated[
    str, Field(pattern=TIME_PATTERN, description="When it was said: ISO 8601 with a zone, e.g. 2026-11-25T18:00:00Z.")
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=1000)


class InterpretRequest(_Body):
    text: str = Field(min_length=1, max_length=1000, description="What the user said (ASR text).")
    user_id: Id
    """Who spoke."""
    device_id: Id = Field(description="The endpoint (speaker/screen) the user talked to.")
    time: Time | None = None
    """When it was said; None: now."""
    asr_confidence: float = Field(default=1.0, ge=0.0, le=1.0)
    """The recognizer's confidence (0..1)."""
    session_id: Id | None = None
    """Session to log the turn under; None: one is derived."""


class InterpretResponse(BaseModel):
    response: str
    """What the assistant says."""
    asks_feedback: bool
    """The response ends with "Did I get that right?"."""
    turn: Turn = Field(description="The logged Turn, trace included (every stage's decision).")


class HaIntentOut(BaseModel):
    name: str = Field(description="Home Assistant intent type, e.g. HassTurnOn (or one an intent_script handles).")
    entities: dict[str, Any] = Field(description="Slot name -> value as HA's intent handlers take them.")


class ConversationResponse(BaseModel):
    intent: str | None = Field(description="selflearn's reading of the request (its first part), if any.")
    slots: dict[str, Any] = Field(description="selflearn's slots of that reading (device and area ids).")
    intents: list[HaIntentOut] = Field(description="What HA should carry out, in order; empty if abstained/handled.")
    speech: str
    """What HA should say."""
    abstained: bool = Field(description="Not understood or not doable here: HA should answer on its own.")
    handled: bool = Field(description="selflearn answered by itself (teaching, feedback): only speak the speech.")
    conversation_id: str
    """HA's chat session id, echoed."""
    turn_id: str
    """The logged turn, for the result report."""
    user_id: str = Field(description="The household user the request was logged for (docs/home-assistant.md).")


class ResultRecorded(BaseModel):
    turn_id: str
    """The turn the report was recorded for."""
    result_status: str = Field(description="The turn's status now: 'failed' when HA could not carry it out.")


class FeedbackRequest(_Body):
    user_id: Id
    """Who answers."""
    turn_id: Id
    """The turn the answer is about."""
    answer: Literal["yes", "no", "correction"]
    """What they answered to "Did I get that right?"."""
    correction_text: str | None = Field(default=None, min_length=1, max_length=1000)
    """What they meant instead, for a correction."""
    time: Time | None = None
    """When they answered; None: now."""


class TeachRequest(_Body):
    user_id: Id
    """Who teaches."""
    text: str = Field(min_length=1, max_length=1000)
    """What they said."""
    time: Time | None = None
    """When they said it; None: now."""


class TeachResponse(BaseModel):
    understood: bool
    """The statement was understood as a teaching."""
    response: str
    """What the assistant says back."""
    preferences: list[Preference]
    """The preferences it stored."""
    in_dialogue: bool = Field(description="True while a guided Q&A or clarifying question awaits the next answer.")


class PreferenceBody(_Body):
    kind: PreferenceKind
    """What sort of preference."""
    value: str = Field(min_length=1, max_length=1000)
    """What the phrase or default means for this user."""
    key: str = Field(default="", max_length=200)
    """The phrase it applies to, if any."""
    scope: Annotated[str, Field(pattern=r"^(\*|[A-Za-z0-9_.@:-]{1,128})$")] = "*"
    """A home id, or * for every home of this user."""


def canonical_value(kind: PreferenceKind, value: str) -> str:
    """A taste as the vocabulary spells it ("the dubs" -> "Golden State Warriors") when that is unambiguous."""
    if kind not in TASTE_KINDS:
        return value
    found = vocabulary().lookup(value, (kind,))
    return found[0][1] if len(found) == 1 else value


class Deleted(BaseModel):
    deleted: int
    """Records deleted."""


class Forgotten(BaseModel):
    user_id: str
    """The user forgotten."""
    deleted: dict[str, int]
    """Rows, quarantine lines, personal folders and pending rewrites removed, by kind."""
    phrases: int = Field(description="The user's own phrases looked for (said by nobody else).")
    files_scanned: int = Field(description="Files under the data dir, artifacts and feedback read by the scan.")
    left: list[str] = Field(description="Names of the files that still hold the user's id or one of their phrases.")
    verified: bool = Field(description="The scan of every file found none of the user's id and phrases.")


class ErrorDetail(BaseModel):
    code: int
    """The HTTP status."""
    message: str
    """What went wrong, one line."""


class ErrorBody(BaseModel):
    error: ErrorDetail
    """The error."""


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 422, 503)
}

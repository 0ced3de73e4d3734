"""The interaction-log records: Turn (what the assistant saw and did), Gold (simulator truth, eval only), Feedback.

Turns are what learners read. Gold is written only by the simulator (or a human annotation effort) and read only by
evaluation code; it shares ``turn_id`` with the turn it describes. Every record carries ``schema_version`` so that
old logs stay readable when fields are added. Version 2 made the Turn fields a real Home Assistant cannot supply
(``device_type``, ``asr_confidence``, ``response_latency_ms``) optional; stores written by version 1 are migrated
on open (``store._migrate``) and their rows keep ``schema_version`` 1.

JSON-valued fields (slots, entities, device state, traces) are dicts in Python and canonical JSON strings in Arrow
and Parquet, so a JSONL -> Parquet -> JSONL round trip is exact.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar, get_args

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, model_validator

from selflearn import safejson
from selflearn.ids import Id

SCHEMA_VERSION = 2
MAX_TEXT_CHARS = 10_000
MAX_LATENCY_MS = 600_000.0
MAX_KEY_CHARS = 200  # a preference's phrase ("when I say KEY ...")
MAX_VALUE_CHARS = 1000  # a preference's value
MIN_TS = datetime(2000, 1, 1, tzinfo=UTC)
MAX_TS = datetime(2100, 1, 1, tzinfo=UTC)

DeviceType = Literal["speaker", "screen", "display", "phone", "car", "watch", "tv"]
RewriteSource = Literal["none", "global", "personal", "feedback", "teach", "retrieval"]
ResultStatus = Literal[
    "success",  # the request was understood and carried out
    "no_match",  # NLU found no intent
    "no_entity",  # entity resolution found no device/area/item
    "failed",  # the action was attempted and failed on the device
    "unsupported",  # understood, but the home cannot do it (impossible request)
    "ignored",  # nothing addressed to the assistant (e.g. a false wake with no speech)
    "feedback",  # the turn answered a feedback question
    "teach",  # the turn taught a preference
]
ExplicitFeedback = Literal["yes", "no", "correction", "unsatisfied"]
FailurePoint = Literal["false_wake", "asr", "nlu", "er", "result", "correct"]
FeedbackKind = Literal["yes", "no", "correction", "teach"]
# The declared values, for every other module (derive, never repeat them)
DEVICE_TYPES: tuple[DeviceType, ...] = get_args(DeviceType)
REWRITE_SOURCES: tuple[RewriteSource, ...] = get_args(RewriteSource)
RESULT_STATUSES: tuple[ResultStatus, ...] = get_args(ResultStatus)
FAILURE_POINTS: tuple[FailurePoint, ...] = get_args(FailurePoint)
DEFECT_POINTS: tuple[FailurePoint, ...] = tuple(p for p in FAILURE_POINTS if p != "correct")  # where a turn failed


def _bounded_json(value: dict[str, Any]) -> dict[str, Any]:
    safejson.check(value)  # stored values must stay readable: bounded depth and size, finite numbers
    return value


JsonDict = Annotated[dict[str, Any], AfterValidator(_bounded_json)]


def canonical_json(value: Any) -> str:
    """One spelling per value, so stored JSON compares and round-trips exactly."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _check_ts(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware (UTC)")
    value = value.astimezone(UTC)
    if not MIN_TS <= value < MAX_TS:
        raise ValueError(f"timestamp {value.isoformat()} outside {MIN_TS.year}..{MAX_TS.year - 1}")
    return value


Timestamp = Annotated[datetime, AfterValidator(_check_ts), PlainSerializer(datetime.isoformat, return_type=str)]


class LogRecord(BaseModel):
    """Shared rules: no unknown fields, immutable, bounded text, JSON fields also accepted in their string form."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=MAX_TEXT_CHARS)
    json_fields: ClassVar[tuple[str, ...]] = ()
    """Fields stored as JSON text and also accepted as a JSON string on input."""

    @model_validator(mode="before")
    @classmethod
    def _decode_json_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(isinstance(data.get(k), str) for k in cls.json_fields):
            data = dict(data)
            for k in cls.json_fields:
                if isinstance(data.get(k), str):
                    try:
                        data[k] = safejson.loads(data[k])
                    except safejson.JsonLimitError as e:
                        raise ValueError(f"{k}: {e}") from None
        return data


class Turn(LogRecord):
    """One utterance and everything the runtime decided about it. The only record learners read."""

    turn_id: str = Field(min_length=1, max_length=128)
    """Unique id of the turn."""
    dialogue_id: str = Field(min_length=1, max_length=128)
    """The dialogue it belongs to: one request and its repairs."""
    session_id: str = Field(min_length=1, max_length=128)
    """The session it belongs to: one episode of talking to the assistant."""
    user_id: Id
    """Who spoke (the household user)."""
    home_id: Id
    """The home it was said in."""
    device_id: Id
    """The endpoint spoken to."""
    device_type: DeviceType | None = Field(
        default=None, description="Kind of endpoint; None when the client does not say (a Home Assistant satellite)."
    )
    ts: Timestamp
    """When it was said (UTC)."""
    area: str | None = None
    """Area of the endpoint, if known."""
    asr_text: str
    """What the recognizer heard."""
    asr_confidence: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Recognizer confidence; None when only the text reached us."
    )
    rewritten_text: str | None = None
    """What the rewriter sent to NLU instead, if it rewrote."""
    rewrite_source: RewriteSource = "none"
    """Which rewriter changed it ("none" when none did)."""
    nlu_intent: str | None = None
    """The intent the runtime chose; None when nothing was understood."""
    nlu_slots: JsonDict = Field(default_factory=dict)
    """Its slots: name -> value."""
    nlu_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    """The NLU's confidence in that reading (0..1)."""
    resolved_entities: JsonDict = Field(default_factory=dict)
    """What the slots resolved to in the home (device and area ids)."""
    result_status: ResultStatus
    """How the request ended."""
    response_text: str = ""
    """What the assistant said."""
    barge_in: bool = Field(default=False, strict=True)
    """The user cut the response off."""
    response_latency_ms: float | None = Field(
        default=None, ge=0.0, le=MAX_LATENCY_MS, description="Time to answer; None when not measured end to end."
    )
    device_state_snapshot: JsonDict = Field(default_factory=dict)
    """States before execution of the devices the turn is about and of the speaker's room."""
    explicit_feedback: ExplicitFeedback | None = None
    """What the user said about this turn when asked, if anything."""
    trace: JsonDict = Field(
        default_factory=dict,
        description="Per-stage decisions (top-k NLU hypotheses, ER scores, context features) for failure analysis.",
    )
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)
    """Version of the log schema the record was written in."""

    json_fields: ClassVar[tuple[str, ...]] = ("nlu_slots", "resolved_entities", "device_state_snapshot", "trace")
    """Fields stored as JSON text."""


class Gold(LogRecord):
    """The truth behind a turn, known to the simulator. Evaluation reads it; learners never do."""

    turn_id: str = Field(min_length=1, max_length=128)
    """The turn this truth is about."""
    true_text: str
    """What the person really said."""
    true_intent: str | None = None
    """What they really wanted; None for chatter or a false wake."""
    true_slots: JsonDict = Field(default_factory=dict)
    """The slots of what they wanted."""
    failure_point: FailurePoint
    """Where the turn went wrong ("correct" when it did not)."""
    goal_id: str = Field(min_length=1, max_length=128)
    """The goal the turn served."""
    goal_success: bool = Field(strict=True)
    """The goal was achieved in the end."""
    is_rephrase_of: str | None = None
    """The turn this one rephrases, if any."""
    is_impossible: bool = Field(default=False, strict=True)
    """The goal cannot be done in this home."""
    annotator_labels: JsonDict = Field(
        default_factory=dict,
        description="Simulated human annotators' labels (e.g. single/majority goal success), for baselines.",
    )
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)
    """Version of the log schema the record was written in."""

    json_fields: ClassVar[tuple[str, ...]] = ("true_slots", "annotator_labels")
    """Fields stored as JSON text."""


class Feedback(LogRecord):
    """An explicit statement by the user about a turn: yes/no to "Did I answer?", a correction, or a teaching."""

    feedback_id: str = Field(min_length=1, max_length=128)
    """Unique id of the feedback."""
    turn_id: str = Field(min_length=1, max_length=128)
    """The turn it is about."""
    user_id: Id
    """Who gave it."""
    ts: Timestamp
    """When it was given (UTC)."""
    kind: FeedbackKind
    """Yes, no, correction or teaching."""
    text: str = ""
    """What the user said."""
    correction_text: str | None = None
    """What they meant instead, for a correction."""
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)
    """Version of the log schema the record was written in."""


PreferenceKind = Literal[
    "team",  # "I'm a Warriors fan" -> value "Golden State Warriors"
    "cuisine",  # "I like Italian food" -> "Italian"
    "music_genre",  # "my favourite music is jazz" -> "jazz"
    "place",  # "Wilkerson is the one in California" -> key "wilkerson", value "Wilkerson, California"
    "device_alias",  # "the big light is the living room ceiling light" -> key "big light", value a device id
    "phrase",  # "when I say movie night I mean ..." -> key "movie night", value the utterance(s) it stands for
]


class Preference(LogRecord):
    """What one user taught the assistant. Per user by construction: every lookup is keyed by ``user_id``."""

    user_id: Id
    """Who taught it."""
    kind: PreferenceKind
    """What sort of preference (a favourite, a default device, a name, ...)."""
    key: str = Field(default="", max_length=MAX_KEY_CHARS, description="The phrase the preference applies to, if any.")
    value: str = Field(min_length=1, max_length=MAX_VALUE_CHARS)
    """What the phrase or default means for this user."""
    scope: str = Field(default="*", description="A home id, or * for every home of this user.")
    ts: Timestamp
    """When it was taught (UTC)."""
    source: Literal["statement", "guided", "moment", "correction"] = "statement"
    """How it was learned: a statement, a guided Q&A, a moment, a correction."""
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)
    """Version of the log schema the record was written in."""


Record = Turn | Gold | Feedback
R = TypeVar("R", Turn, Gold, Feedback, Preference)

_TS = pa.timestamp("us", tz="UTC")
ARROW_SCHEMAS: dict[type[LogRecord], pa.Schema] = {
    Turn: pa.schema(
        [
            ("turn_id", pa.string(), False),
            ("dialogue_id", pa.string(), False),
            ("session_id", pa.string(), False),
            ("user_id", pa.string(), False),
            ("home_id", pa.string(), False),
            ("device_id", pa.string(), False),
            ("device_type", pa.string()),
            ("ts", _TS, False),
            ("area", pa.string()),
            ("asr_text", pa.string(), False),
            ("asr_confidence", pa.float64()),
            ("rewritten_text", pa.string()),
            ("rewrite_source", pa.string(), False),
            ("nlu_intent", pa.string()),
            ("nlu_slots", pa.string(), False),
            ("nlu_confidence", pa.float64(), False),
            ("resolved_entities", pa.string(), False),
            ("result_status", pa.string(), False),
            ("response_text", pa.string(), False),
            ("barge_in", pa.bool_(), False),
            ("response_latency_ms", pa.float64()),
            ("device_state_snapshot", pa.string(), False),
            ("explicit_feedback", pa.string()),
            ("trace", pa.string(), False),
            ("schema_version", pa.int32(), False),
        ]
    ),
    Gold: pa.schema(
        [
            ("turn_id", pa.string(), False),
            ("true_text", pa.string(), False),
            ("true_intent", pa.string()),
            ("true_slots", pa.string(), False),
            ("failure_point", pa.string(), False),
            ("goal_id", pa.string(), False),
            ("goal_success", pa.bool_(), False),
            ("is_rephrase_of", pa.string()),
            ("is_impossible", pa.bool_(), False),
            ("annotator_labels", pa.string(), False),
            ("schema_version", pa.int32(), False),
        ]
    ),
    Feedback: pa.schema(
        [
            ("feedback_id", pa.string(), False),
            ("turn_id", pa.string(), False),
            ("user_id", pa.string(), False),
            ("ts", _TS, False),
            ("kind", pa.string(), False),
            ("text", pa.string(), False),
            ("correction_text", pa.string()),
            ("schema_version", pa.int32(), False),
        ]
    ),
    Preference: pa.schema(
        [
            ("user_id", pa.string(), False),
            ("kind", pa.string(), False),
            ("key", pa.string(), False),
            ("value", pa.string(), False),
            ("scope", pa.string(), False),
            ("ts", _TS, False),
            ("source", pa.string(), False),
            ("schema_version", pa.int32(), False),
        ]
    ),
}
RECORD_TYPES: dict[str, type[Turn] | type[Gold] | type[Feedback] | type[Preference]] = {
    "turns": Turn,
    "gold": Gold,
    "feedback": Feedback,
    "preferences": Preference,
}


def to_row(record: LogRecord) -> dict[str, Any]:
    """A record as an Arrow-ready row: JSON fields as canonical strings, timestamps as datetimes."""
    row = dict(record.__dict__)
    for name in record.json_fields:
        row[name] = canonical_json(row[name])
    return row


def to_arrow(records: Iterable[LogRecord], kind: type[LogRecord]) -> pa.Table:
    rows = [to_row(r) for r in records]
    schema = ARROW_SCHEMAS[kind]
    return pa.Table.from_pylist(rows, schema=schema)


def from_arrow(table: pa.Table, kind: type[R]) -> list[R]:
    return [kind.model_validate(row) for row in table.to_pylist()]


def write_jsonl(records: Iterable[LogRecord], path: str | Path) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(record.model_dump_json())
            f.write("\n")
            n += 1
    return n


def read_jsonl(path: str | Path, kind: type[R]) -> Iterator[R]:
    """Strict reader for trusted files (our own output). Untrusted logs go through ``store.ingest``."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield kind.model_validate_json(line)


def write_parquet(records: Iterable[LogRecord], path: str | Path, kind: type[LogRecord]) -> int:
    table = to_arrow(records, kind)
    pq.write_table(table, path, compression="zstd")
    return table.num_rows


def read_parquet(path: str | Path, kind: type[R]) -> list[R]:
    return from_arrow(pq.read_table(path), kind)

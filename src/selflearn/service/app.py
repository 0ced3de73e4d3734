"""The HTTP service (``selflearn serve``): the same runtime, store and artifacts as the CLI, behind bearer tokens.

Every request carries a home token (``selflearn tokens create --home H``) and reaches only that home's people; an
admin token may only trigger ``learn``. A user id that is not a person of the token's home is answered exactly like
an unknown one (404), so a token cannot probe other homes. Client mistakes (oversize or non-UTF-8 bodies, wrong
types, unknown users or devices) get a 4xx JSON error ``{"error": {"code", "message"}}``; the service never answers
a client's input with a 500. Turns are buffered and written to the store in batches by a background thread, so
``interpret`` never waits on a disk write. A newly published artifact set is picked up without restart (the
rewriter follows the ArtifactStore's ``current`` pointer).

``POST /v1/conversation`` takes Home Assistant's conversation input (no speaker id: a household user per satellite,
``integrations/conversation.py``) and answers the HA intents to carry out. ``/docs`` and ``/redoc`` load their assets
from the package (fastapi-offline), so they work without internet.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.routing import Match

from selflearn import __version__
from selflearn.artifacts import ArtifactStore
from selflearn.errors import SelflearnError
from selflearn.forget import forget_user
from selflearn.home import Home
from selflearn.ids import MAX_LENGTH, PATTERN, Id
from selflearn.integrations.conversation import ConversationInput, ResultReport, converse, with_result
from selflearn.runtime.feedback import FeedbackPolicy, FeedbackRewriter, PendingRewrites
from selflearn.runtime.feedback import pending_root as default_pending_root
from selflearn.schema import Feedback, Preference, PreferenceKind, Turn
from selflearn.service.dashboard import mount as mount_dashboard
from selflearn.service.tokens import TokenInfo, Tokens
from selflearn.store.logstore import Store
from selflearn.teach.statements import TASTE_KINDS, vocabulary
from selflearn.teach.teacher import Teacher

MAX_BODY_BYTES = 64 * 1024
FLUSH_SECONDS = 0.5
FLUSH_ROWS = 512
LATENCY_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 250, 1000)


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


def _when(value: str | None) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC) if value else datetime.now(UTC)


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


@dataclass
class Metrics:
    """Counters and latency histograms, printed in the Prometheus text format by ``GET /metrics``."""

    requests: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    """(method, route, status) -> requests answered."""
    latency: dict[str, list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    )
    """Route -> request counts per latency bucket (``LATENCY_BUCKETS_MS``, then +Inf)."""
    latency_sum: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Route -> total latency, in ms."""
    events: Counter[str] = field(default_factory=Counter)
    """Event name -> count (turn, conversation and result statuses, feedback answers, teachings)."""

    def observe(self, method: str, route: str, status: int, ms: float) -> None:
        self.requests[(method, route, status)] += 1
        buckets = self.latency[route]
        i = next((i for i, b in enumerate(LATENCY_BUCKETS_MS) if ms <= b), len(LATENCY_BUCKETS_MS))
        buckets[i] += 1
        self.latency_sum[route] += ms

    def render(self, artifact_version: str | None) -> str:
        lines = [
            "# HELP selflearn_requests_total HTTP requests by method, route and status.",
            "# TYPE selflearn_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.requests.items()):
            lines.append(f'selflearn_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}')
        lines += [
            "# HELP selflearn_request_duration_ms Request latency in milliseconds.",
            "# TYPE selflearn_request_duration_ms histogram",
        ]
        for route, buckets in sorted(self.latency.items()):
            total = 0
            for bound, n in zip([*LATENCY_BUCKETS_MS, "+Inf"], buckets, strict=True):
                total += n
                lines.append(f'selflearn_request_duration_ms_bucket{{route="{route}",le="{bound}"}} {total}')
            lines.append(f'selflearn_request_duration_ms_sum{{route="{route}"}} {self.latency_sum[route]:.3f}')
            lines.append(f'selflearn_request_duration_ms_count{{route="{route}"}} {total}')
        lines += [
            "# HELP selflearn_events_total Turns, teachings and feedback.",
            "# TYPE selflearn_events_total counter",
        ]
        for name, n in sorted(self.events.items()):
            lines.append(f'selflearn_events_total{{event="{name}"}} {n}')
        lines += ["# HELP selflearn_artifact_info The artifact set in service.", "# TYPE selflearn_artifact_info gauge"]
        lines.append(f'selflearn_artifact_info{{version="{artifact_version or "none"}"}} 1')
        return "\n".join(lines) + "\n"


class Service:
    """Everything a request needs: homes, one runtime per home, the store, the teacher, tokens, artifacts."""

    def __init__(
        self,
        homes: Sequence[Home],
        *,
        db: Path | None = None,
        artifacts: Path | None = None,
        tokens: Tokens | None = None,
        pending_root: Path | None = None,
        rewriter: Any = None,
    ) -> None:
        from selflearn.runtime.runtime import Runtime

        self.homes = {h.id: h for h in homes}
        self.store = Store(db)
        self.store_lock = threading.Lock()
        self.learn_lock = threading.Lock()  # a forget waits for a running learn, whose snapshot may hold the user
        self.artifacts = ArtifactStore(artifacts)
        self.tokens = tokens or Tokens()
        self.pending = PendingRewrites(pending_root or default_pending_root())
        self.policy = FeedbackPolicy()
        self.prefs = _LockedPreferences(self.store, self.store_lock)
        self.on_forget: list[Callable[[str], None]] = []  # also forget here at once (the dashboard's snapshot)
        self.teacher = Teacher(
            self.prefs,
            policy=self.policy,
            pending=self.pending,
            on_feedback=self.add_feedback,
        )
        self.rewriter = rewriter if rewriter is not None else _live_rewriter(self.artifacts)
        self.metrics = Metrics()
        self._buffer: list[Turn] = []
        self._feedback: list[Feedback] = []
        self._buffer_lock = threading.Lock()
        self._flush_lock = threading.Lock()  # held from taking the buffer to the end of its write
        self.runtimes = {
            h.id: Runtime(
                h,
                rewriter=FeedbackRewriter(self.pending, self.rewriter),
                preferences=self.teacher.preferences,
                sink=self._sink,
                feedback_policy=self.policy,
                teacher=self.teacher,
            )
            for h in homes
        }
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="selflearn-flush", daemon=True)
        self._flusher.start()

    # ---- logging

    def _sink(self, turn: Turn) -> None:
        with self._buffer_lock:
            self._buffer.append(turn)
            full = len(self._buffer) >= FLUSH_ROWS
        if full:
            self.flush()

    def add_feedback(self, fb: Feedback) -> None:
        with self._buffer_lock:
            self._feedback.append(fb)

    def flush(self) -> None:
        with self._flush_lock:
            with self._buffer_lock:
                turns, self._buffer = self._buffer, []
                feedback, self._feedback = self._feedback, []
            if turns or feedback:
                with self.store_lock:
                    self.store.add(turns=turns, feedback=feedback)

    def record_result(self, home_id: str, report: ResultReport) -> Turn:
        """Put HA's report of carrying out one of this home's turns on the logged turn, still buffered or stored
        (under the flush lock a turn is in exactly one of the two). LookupError for a turn not of this home,
        ValueError for one without intents or reported already."""
        with self._flush_lock:
            with self._buffer_lock:
                at = next((i for i, t in enumerate(self._buffer) if t.turn_id == report.turn_id), None)
                if at is not None and self._buffer[at].home_id == home_id:
                    self._buffer[at] = turn = with_result(self._buffer[at], report)
                    return turn
            with self.store_lock:
                stored = self.store.turn(report.turn_id)
                if stored is None or stored.home_id != home_id:
                    raise LookupError(f"no turn {report.turn_id!r} in home {home_id!r}")
                turn = with_result(stored, report)
                self.store.set_outcome(turn)
            return turn

    def _flush_loop(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self.flush()

    @property
    def closed(self) -> bool:
        """Whether ``close`` has begun: a background reader checks this under ``store_lock`` before reading."""
        return self._stop.is_set()

    def close(self) -> None:
        self._stop.set()
        self._flusher.join(timeout=5)
        self.flush()
        with self.store_lock:  # a dashboard build that holds it finishes its read first; a later one sees `closed`
            self.store.close()

    # ---- lookups

    def person_home(self, token: TokenInfo, user_id: str) -> Home:
        home = self.homes.get(token.home or "")
        if home is None or all(p.id != user_id for p in home.people):
            raise HTTPException(404, f"no user {user_id!r} in this home")
        return home

    def turn_of(self, user_id: str, turn_id: str) -> Turn:
        """The user's own turn (buffered or stored); 404 for anyone else's or an unknown id."""
        with self._buffer_lock:
            turn = next((t for t in self._buffer if t.turn_id == turn_id), None)
        if turn is None:
            with self.store_lock:
                turn = self.store.turn(turn_id)
        if turn is None or turn.user_id != user_id:
            raise HTTPException(404, f"no turn {turn_id!r} of this user")
        return turn

    def edit_preference(self, user_id: str, kind: str, key: str, scope: str, value: str) -> Preference:
        """Give the user's taught preference (kind, key, scope) a new value; how it was taught stays. 404: none."""
        found = [p for p in self.teacher.store.preferences(user_id) if (p.kind, p.key, p.scope) == (kind, key, scope)]
        if not found:
            raise HTTPException(404, f"no {kind} preference {key!r} of {user_id!r} to edit")
        edited = Preference.model_validate(
            found[0].model_dump() | {"value": canonical_value(found[0].kind, value), "ts": datetime.now(UTC)}
        )
        self.teacher.store.put_preference(edited)
        return edited

    def forget(self, user_id: str) -> Forgotten:
        """Forget the user on disk (``forget.forget_user``: store, artifact sets, pending rewrites, then a scan of
        every file) and at once in memory: the rewriter's personal layer, preferences cache, teacher, feedback
        policy and runtimes. A running learn publishes first: its snapshot may hold the user's turns."""
        self.flush()
        with self.learn_lock, self.store_lock:
            said = self.store.phrases(user_id, min_chars=0)  # what the rewriter may have cached vectors for
            done = forget_user(user_id, store=self.store, artifacts=self.artifacts, pending=self.pending)
        forget_rewriter = getattr(self.rewriter, "forget", None)
        if forget_rewriter is not None:
            forget_rewriter(user_id, said)
        self.teacher.forget(user_id)
        self.policy.forget(user_id)
        for runtime in self.runtimes.values():
            runtime.forget(user_id)
        self.prefs.invalidate(user_id)
        for hook in self.on_forget:
            hook(user_id)
        return Forgotten(**(asdict(done) | {"left": [Path(f).name for f in done.left]}))  # no server paths out


class _LockedPreferences:
    """The store's preferences behind the store lock (the flusher thread shares the connection), cached per user:
    every utterance reads them, and only this service's teacher and endpoints change them while it runs."""

    def __init__(self, store: Store, lock: threading.Lock) -> None:
        self.store = store
        self.lock = lock
        self._cache: dict[str, list[Preference]] = {}

    def preferences(self, user_id: str) -> list[Preference]:
        cached = self._cache.get(user_id)
        if cached is None:
            with self.lock:
                cached = self._cache[user_id] = self.store.preferences(user_id)
        return list(cached)

    def put_preference(self, p: Preference) -> None:
        with self.lock:
            self.store.put_preference(p)
            self._cache.pop(p.user_id, None)

    def delete_preferences(self, user_id: str, *, kind: str | None = None, key: str | None = None) -> int:
        with self.lock:
            self._cache.pop(user_id, None)
            return self.store.delete_preferences(user_id, kind=kind, key=key)

    def invalidate(self, user_id: str) -> None:
        self._cache.pop(user_id, None)


def _live_rewriter(artifacts: ArtifactStore) -> Any:
    from selflearn.runtime.retrieval import Retrieval
    from selflearn.runtime.rewriter import LiveRewriter

    return LiveRewriter(artifacts, fallback=Retrieval.load)


# ---------------------------------------------------------------- the app


class _Guard:
    """Plain ASGI (cheaper than a Starlette ``BaseHTTPMiddleware``): counts and times every request for ``/metrics``,
    and refuses bodies over ``MAX_BODY_BYTES`` (declared or streamed) with 413 before anything parses them; a body
    within the limit is read whole here and handed on unchanged."""

    def __init__(self, app: Callable[..., Awaitable[None]], metrics: Metrics, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.metrics = metrics
        self.limit = limit

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._limited(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(scope["method"], route, status, (time.perf_counter() - start) * 1000.0)

    async def _limited(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _error(413, f"request body over {self.limit} bytes")(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)  # client went away: let the app see the disconnect
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await _error(413, f"request body over {self.limit} bytes")(scope, receive, send)
                return
        replayed = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


_bearer = HTTPBearer(auto_error=False)


async def _token(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> TokenInfo:
    service: Service = request.app.state.service
    info = service.tokens.check(creds.credentials) if creds is not None else None
    if info is None:
        raise HTTPException(401, "missing or unknown bearer token")
    return info


async def _home_token(info: Annotated[TokenInfo, Depends(_token)]) -> TokenInfo:
    if info.home is None:
        raise HTTPException(403, "an admin token cannot act for a user; use the home's token")
    return info


AnyToken = Annotated[TokenInfo, Depends(_token)]
HomeToken = Annotated[TokenInfo, Depends(_home_token)]
UserId = Annotated[str, PathParam(pattern=PATTERN, min_length=1, max_length=MAX_LENGTH)]


def _error(code: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=code, headers=headers)


def create_app(service: Service) -> FastAPI:
    app = FastAPIOffline(  # /docs and /redoc from assets shipped in the package: no CDN, works offline
        title="selflearn",
        version=__version__,
        description="A smart-home voice assistant that learns from its own interactions.",
        responses=ERRORS,
        swagger_ui_parameters={"validatorUrl": None},  # Swagger UI would fetch a badge from validator.swagger.io
    )
    app.state.service = service

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # one path may be served by several routes: allow the methods of all of them
            methods = {
                m for r in app.routes if r.matches(request.scope)[0] != Match.NONE for m in getattr(r, "methods", ())
            }
            headers["Allow"] = ", ".join(sorted(methods))
        return _error(exc.status_code, str(exc.detail), headers)

    @app.exception_handler(SelflearnError)
    async def _refused(request: Request, exc: SelflearnError) -> JSONResponse:
        """The library's own errors carry their status (bad input 422, unknown 404, busy 409)."""
        return _error(exc.http_status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors()[:5]:
            loc = e.get("loc", ())
            message = e.get("msg", "invalid")
            if e.get("type") == "string_pattern_mismatch":  # the pattern itself is no message for a person
                message = PATTERN_HINTS.get(str(loc[-1]) if loc else "", "not in the form the OpenAPI schema gives")
            parts.append(f"{'.'.join(str(x) for x in loc)}: {message}")
        return _error(422, "; ".join(parts) or "invalid request")

    @app.post("/v1/interpret", response_model=InterpretResponse)
    async def interpret(body: InterpretRequest, tok: HomeToken) -> Response:
        """Run one utterance through the runtime (teacher, rewrite, NLU, context, ER, execute) and log the turn."""
        home = service.person_home(tok, body.user_id)
        if all(e.id != body.device_id for e in home.endpoints):
            raise HTTPException(404, f"no device {body.device_id!r} in this home")
        result = service.runtimes[home.id].interpret(
            body.text,
            user_id=body.user_id,
            endpoint_id=body.device_id,
            now=_when(body.time),
            asr_confidence=body.asr_confidence,
            session_id=body.session_id,
        )
        service.metrics.events[f"turn_{result.turn.result_status}"] += 1
        answer = InterpretResponse(response=result.response, asks_feedback=result.asks_feedback, turn=result.turn)
        return Response(answer.model_dump_json(), media_type="application/json")  # one serialisation, no re-check

    @app.post("/v1/conversation", response_model=ConversationResponse)
    async def conversation(body: ConversationInput, tok: HomeToken) -> ConversationResponse:
        """Home Assistant's conversation input (no speaker: a household user per satellite/device), through the same
        runtime as interpret; the answer says which HA intents to carry out, or that selflearn abstained."""
        home = service.homes.get(tok.home or "")
        if home is None:
            raise HTTPException(404, f"home {tok.home!r} is not served here")
        reply = converse(service.runtimes[home.id], body)
        turn = reply.turn
        service.metrics.events[f"conversation_{turn.result_status}"] += 1
        return ConversationResponse(
            intent=turn.nlu_intent,
            slots=turn.nlu_slots,
            intents=[HaIntentOut(name=i.name, entities=i.entities) for i in reply.intents],
            speech=reply.speech,
            abstained=reply.abstained,
            handled=reply.handled,
            conversation_id=body.conversation_id or turn.session_id,
            turn_id=turn.turn_id,
            user_id=turn.user_id,
        )

    @app.post("/v1/conversation/result", response_model=ResultRecorded)
    async def conversation_result(body: ResultReport, tok: HomeToken) -> ResultRecorded:
        """How HA carried out the intents of a /v1/conversation answer: a failure makes the logged turn ``failed``
        (a defect signal), HA's report goes into its trace; once per turn."""
        try:
            turn = service.record_result(tok.home or "", body)
        except LookupError as e:
            raise HTTPException(404, str(e)) from e
        except ValueError as e:
            raise HTTPException(409, str(e)) from e
        service.metrics.events[f"result_{turn.result_status}"] += 1
        return ResultRecorded(turn_id=turn.turn_id, result_status=turn.result_status)

    @app.post("/v1/feedback", response_model=Feedback)
    async def feedback(body: FeedbackRequest, tok: HomeToken) -> Feedback:
        """Yes / no / a correction about one of the user's own turns; a correction is a personal rewrite at once."""
        service.person_home(tok, body.user_id)
        if body.answer == "correction" and not body.correction_text:
            raise HTTPException(422, "a correction needs correction_text")
        turn = service.turn_of(body.user_id, body.turn_id)
        now = _when(body.time)
        fb = Feedback(
            feedback_id=f"fb-{uuid.uuid5(uuid.NAMESPACE_URL, f'{body.turn_id}|{now.isoformat()}|{body.answer}')}",
            turn_id=body.turn_id,
            user_id=body.user_id,
            ts=now,
            kind=body.answer,
            correction_text=body.correction_text if body.answer == "correction" else None,
        )
        if fb.correction_text:
            service.pending.add(body.user_id, turn.asr_text, fb.correction_text, now)
        service.add_feedback(fb)
        service.metrics.events[f"feedback_{body.answer}"] += 1
        return fb

    @app.post("/v1/teach", response_model=TeachResponse)
    async def teach(body: TeachRequest, tok: HomeToken) -> TeachResponse:
        """Teach by statement ("I'm a Warriors fan") or answer the teacher's current question."""
        home = service.person_home(tok, body.user_id)
        reply = service.teacher.handle(body.text, user_id=body.user_id, home=home, now=_when(body.time), last_turn=None)
        if reply is None:
            return TeachResponse(
                understood=False,
                response="That doesn't sound like something to learn. Try 'I'm a Warriors fan' or "
                "'learn my preferences'.",
                preferences=[],
                in_dialogue=False,
            )
        service.metrics.events["teach"] += 1
        return TeachResponse(
            understood=True,
            response=reply.response,
            preferences=list(reply.preferences),
            in_dialogue=service.teacher.in_dialogue(body.user_id),
        )

    @app.get("/v1/users/{user_id}/preferences", response_model=list[Preference])
    async def get_preferences(user_id: UserId, tok: HomeToken) -> list[Preference]:
        service.person_home(tok, user_id)
        return service.teacher.store.preferences(user_id)

    @app.put("/v1/users/{user_id}/preferences", response_model=Preference)
    async def put_preference(user_id: UserId, body: PreferenceBody, tok: HomeToken) -> Preference:
        service.person_home(tok, user_id)
        value = canonical_value(body.kind, body.value)
        pref = Preference(
            user_id=user_id, kind=body.kind, key=body.key, value=value, scope=body.scope, ts=datetime.now(UTC)
        )
        service.teacher.store.put_preference(pref)
        return pref

    @app.patch("/v1/users/{user_id}/preferences", response_model=Preference)
    async def edit_preference(user_id: UserId, body: PreferenceBody, tok: HomeToken) -> Preference:
        """A new value for the taught preference (kind, key, scope); 404 if the user has no such preference."""
        service.person_home(tok, user_id)
        return service.edit_preference(user_id, body.kind, body.key, body.scope, body.value)

    @app.delete("/v1/users/{user_id}/preferences", response_model=Deleted)
    async def delete_preferences(
        user_id: UserId, tok: HomeToken, kind: PreferenceKind | None = None, key: str | None = None
    ) -> Deleted:
        service.person_home(tok, user_id)
        return Deleted(deleted=service.teacher.store.delete_preferences(user_id, kind=kind, key=key))

    @app.delete("/v1/users/{user_id}", response_model=Forgotten)
    def forget(user_id: UserId, tok: HomeToken) -> Forgotten:
        """Forget a user everywhere (after a running learn has published), verified by a scan of every file."""
        service.person_home(tok, user_id)
        return service.forget(user_id)

    @app.post("/v1/learn")
    def learn(info: AnyToken) -> dict[str, Any]:
        """Admin: learn from the logs and publish a new artifact set (picked up without restart)."""
        if not info.admin:
            raise HTTPException(403, "learn needs an admin token")
        from selflearn.learners.learn import learn as run_learn

        with service.learn_lock:
            service.flush()
            with service.store_lock:
                logs = service.store.logs()
            report = run_learn(logs, service.artifacts, homes=list(service.homes.values()))  # LearnError: 409
            reload = getattr(service.rewriter, "reload_if_changed", None)
            if reload is not None:
                reload()  # swap now; other publishers (the CLI's learn) are picked up within a second
        return {"version": service.artifacts.current(), "report": _jsonable(report)}

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "artifacts": service.artifacts.current()}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(
            service.metrics.render(service.artifacts.current()), media_type="text/plain; version=0.0.4"
        )

    mount_dashboard(app, service)
    app.add_middleware(_Guard, metrics=service.metrics)
    return app


def _jsonable(report: Any) -> Any:
    if hasattr(report, "to_dict"):
        return report.to_dict()
    if hasattr(report, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(report)
    return str(report)

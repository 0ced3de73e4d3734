"""The HTTP service (``selflearn serve``): the routes over a ``Service``, behind bearer tokens.

Every request carries a home token (``selflearn tokens create --home H``) and reaches only that home's people; an
admin token may only trigger ``learn``. A user id that is not a person of the token's home is answered exactly like
an unknown one (404), so a token cannot probe other homes. Client mistakes (oversize or non-UTF-8 bodies, wrong
types, unknown users or devices) get a 4xx JSON error ``{"error": {"code", "message"}}``; the service never answers
a client's input with a 500.

``POST /v1/conversation`` takes Home Assistant's conversation input (no speaker id: a household user per satellite,
``integrations/conversation.py``) and answers the HA intents to carry out. ``/docs`` and ``/redoc`` load their assets
from the package (fastapi-offline), so they work without internet.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException
from starlette.routing import Match

from selflearn import __version__
from selflearn.errors import SelflearnError
from selflearn.ids import MAX_LENGTH, PATTERN
from selflearn.integrations.conversation import ConversationInput, ResultReport, converse
from selflearn.schema import Feedback, Preference, PreferenceKind
from selflearn.service.dashboard import mount as mount_dashboard
from selflearn.service.middleware import Guard, error_response
from selflearn.service.models import (
    ERRORS,
    PATTERN_HINTS,
    ConversationResponse,
    Deleted,
    FeedbackRequest,
    Forgotten,
    HaIntentOut,
    InterpretRequest,
    InterpretResponse,
    PreferenceBody,
    ResultRecorded,
    TeachRequest,
    TeachResponse,
    canonical_value,
)
from selflearn.service.service import Service
from selflearn.service.tokens import TokenInfo


def _when(value: str | None) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC) if value else datetime.now(UTC)


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
    async def _httperror_response(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # one path may be served by several routes: allow the methods of all of them
            methods = {
                m for r in app.routes if r.matches(request.scope)[0] != Match.NONE for m in getattr(r, "methods", ())
            }
            headers["Allow"] = ", ".join(sorted(methods))
        return error_response(exc.status_code, str(exc.detail), headers)

    @app.exception_handler(SelflearnError)
    async def _refused(request: Request, exc: SelflearnError) -> JSONResponse:
        """The library's own errors carry their status (bad input 422, unknown 404, busy 409)."""
        return error_response(exc.http_status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors()[:5]:
            loc = e.get("loc", ())
            message = e.get("msg", "invalid")
            if e.get("type") == "string_pattern_mismatch":  # the pattern itself is no message for a person
                message = PATTERN_HINTS.get(str(loc[-1]) if loc else "", "not in the form the OpenAPI schema gives")
            parts.append(f"{'.'.join(str(x) for x in loc)}: {message}")
        return error_response(422, "; ".join(parts) or "invalid request")

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
    app.add_middleware(Guard, metrics=service.metrics)
    return app


def _jsonable(report: Any) -> Any:
    if hasattr(report, "to_dict"):
        return report.to_dict()
    if hasattr(report, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(report)
    return str(report)

"""The runtime: the one pipeline the simulator, the CLI and the service all drive.

Per utterance: teacher first look -> rewrite -> taught-preference expansion -> NLU -> context -> entity resolution
-> execute -> feedback ask. Each stage's decision (top-k with scores) and timing goes into the turn's ``trace`` so
that failure-point analysis can tell which stage went wrong. Compiled templates, slot lists and name indexes are
built once per home and shared by every ``Runtime`` of that home.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from selflearn.home import Endpoint, Home
from selflearn.runtime import context as ctx
from selflearn.runtime.context import Candidate, Situation
from selflearn.runtime.execute import Outcome, World, execute
from selflearn.runtime.feedback import FEEDBACK_QUESTION
from selflearn.runtime.nlu import NLU, parse_loose
from selflearn.runtime.resolve import Resolution, Resolver
from selflearn.runtime.rewrites import Retriever, Rewrite, Rewriter
from selflearn.schema import ExplicitFeedback, Preference, Turn
from selflearn.text import normalize

DIALOGUE_GAP_S = 45.0
SESSION_GAP_S = 30 * 60.0
TOP_K = 5
LOW_CONFIDENCE = 0.5  # a reading below this (or none, or an unresolved entity) is handed to the retriever
ROUTINE_KEYS = ("name", "program", "media_type", "genre", "team", "cuisine", "area", "domain")


class FeedbackPolicy(Protocol):
    def should_ask(self, *, user_id: str, now: datetime, confidence: float, rewritten: bool) -> bool: ...


@dataclass(frozen=True)
class TeachReply:
    """The teacher's answer to an utterance that taught a preference or gave feedback on the last turn."""

    response: str
    """What the assistant says back."""
    status: Literal["teach", "feedback"]
    """Whether it was a teaching or feedback on the last turn."""
    feedback_kind: str | None = None
    """Kind of feedback logged: "yes", "no", "correction", "unsatisfied" or "teach"."""
    correction_text: str | None = None
    """What the user meant instead, for a correction."""


class Teacher(Protocol):
    def handle(
        self, text: str, *, user_id: str, home: Home, now: datetime, last_turn: Turn | None
    ) -> TeachReply | None: ...


@dataclass(frozen=True)
class Act:
    """One request as carried out: its reading, the devices it resolved to, the outcome. A taught phrase may
    stand for several; integrations hand each on (e.g. one Home Assistant intent per act)."""

    reading: Candidate | None
    """The reading carried out; None when nothing was understood."""
    resolution: Resolution | None
    """The devices it resolved to; None when not resolved."""
    outcome: Outcome
    """How it ended."""


@dataclass
class Interpretation:
    turn: Turn
    """The logged turn."""
    stages: dict[str, dict[str, Any]]
    """Stage name -> its decisions (the turn's trace)."""
    response: str
    """What the assistant says."""
    hypotheses: list[Candidate] = field(default_factory=list)
    """Readings considered, best first."""
    asks_feedback: bool = False
    """The response ends with "Did I get that right?"."""
    acts: list[Act] = field(default_factory=list)
    """Empty when the teacher answered (teaching, feedback)."""

    @property
    def status(self) -> str:
        return self.turn.result_status


@dataclass
class _Parts:
    """Shared, immutable per-home machinery (cached by home content)."""

    nlu: NLU
    resolver: Resolver
    routines: dict[str, list[tuple[int, str, dict[str, Any]]]]


@lru_cache(maxsize=1024)
def _parts_for(home_json: str) -> _Parts:
    home = Home.model_validate_json(home_json)
    nlu = NLU.for_home(home)
    routines: dict[str, list[tuple[int, str, dict[str, Any]]]] = {}
    for person in home.people:
        for routine in person.routines:
            cands = ctx.expand(nlu.parse(routine.say), home)
            if cands:
                hh, mm = routine.at.split(":")
                key = {k: v for k, v in cands[0].slots.items() if k in ROUTINE_KEYS}
                routines.setdefault(person.id, []).append((int(hh) * 60 + int(mm), cands[0].intent, key))
    return _Parts(nlu, Resolver(home), routines)


class Runtime:
    """One home's assistant. ``state`` holds the live device states that execution changes."""

    def __init__(
        self,
        home: Home,
        *,
        context: bool = True,
        rewriter: Rewriter | None = None,
        preferences: Callable[[str], Sequence[Preference]] | None = None,
        sink: Callable[[Turn], None] | None = None,
        feedback_policy: FeedbackPolicy | None = None,
        teacher: Teacher | None = None,
        retriever: Retriever | None = None,
    ) -> None:
        """``retriever``: the fallback for failing requests; by default the rewriter's own, if it has one (so no
        rewriter, ``--no-rewrite``, means no retrieval either)."""
        self.home = home
        self.context = context
        self.rewriter = rewriter
        self.retriever = retriever if retriever is not None else rewriter if isinstance(rewriter, Retriever) else None
        self.preferences = preferences
        self.sink = sink
        self.feedback_policy = feedback_policy
        self.teacher = teacher
        self.parts = _parts_for(home.model_dump_json())
        self.state: dict[str, dict[str, Any]] = {d.id: dict(d.state) for d in home.devices}
        self.world = World(home, self.state)
        self.tz = ZoneInfo(home.timezone)
        self._last: dict[str, Turn] = {}
        self._dialogue: dict[str, tuple[datetime, str]] = {}
        self._session: dict[str, tuple[datetime, str]] = {}
        self._count = 0
        self._salt = uuid.uuid4().hex  # default ids stay unique across runtimes and restarts

    @property
    def nlu(self) -> NLU:
        return self.parts.nlu

    def forget(self, user_id: str) -> None:
        """Drop what the runtime remembers about a user between turns (last turn, session, dialogue)."""
        self._last.pop(user_id, None)
        self._session.pop(user_id, None)
        self._dialogue.pop(user_id, None)

    def interpret(
        self,
        text: str,
        *,
        user_id: str,
        endpoint_id: str,
        now: datetime,
        asr_confidence: float | None = 1.0,
        session_id: str | None = None,
        dialogue_id: str | None = None,
        turn_id: str | None = None,
        barge_in: bool = False,
        endpoint: Endpoint | None = None,
    ) -> Interpretation:
        """One utterance through every stage, logged as a Turn. ``endpoint`` stands in for a microphone the home file
        does not list (a Home Assistant satellite: no area, no type); otherwise ``endpoint_id`` names one it does.
        ``asr_confidence`` None: only the text reached us."""
        started = time.perf_counter()
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        endpoint = endpoint if endpoint is not None else self.home.endpoint(endpoint_id)
        stages: dict[str, dict[str, Any]] = {}
        ids = self._ids(user_id, now, session_id, dialogue_id, turn_id)

        if self.teacher is not None:
            t = time.perf_counter()
            reply = self.teacher.handle(
                text, user_id=user_id, home=self.home, now=now, last_turn=self._last.get(user_id)
            )
            stages["teach"] = {"ms": _ms(t), "handled": reply is not None}
            if reply is not None:
                stages["teach"].update(status=reply.status, kind=reply.feedback_kind)
                turn = self._turn(
                    ids, user_id, endpoint, now, text, asr_confidence, barge_in, started, stages,
                    result_status=reply.status, response_text=reply.response,
                    explicit_feedback=_explicit(reply.feedback_kind),
                )  # fmt: skip
                return self._emit(Interpretation(turn, stages, reply.response))

        nlu_text, rewrite_source = text, "none"
        if self.rewriter is not None:
            t = time.perf_counter()
            rw = self.rewriter.rewrite(text, user_id=user_id, home=self.home, endpoint=endpoint, now=now)
            applied = rw is not None and normalize(rw.text) != normalize(text)
            stages["rewrite"] = {"ms": _ms(t), "applied": applied}
            if rw is not None and applied:
                nlu_text, rewrite_source = rw.text, rw.source
                stages["rewrite"].update(text=rw.text, source=rw.source, score=round(rw.score, 4))

        prefs: Sequence[Preference] = ()
        pinned: list[str] = []
        parts = [nlu_text]
        if self.context and self.preferences is not None:
            t = time.perf_counter()
            prefs = [p for p in self.preferences(user_id) if p.scope in ("*", self.home.id)]
            expanded, used, pinned = _expand_preferences(nlu_text, prefs, self.home)
            stages["preferences"] = {"ms": _ms(t), "n": len(prefs), "applied": used}
            if used:
                nlu_text = expanded
                rewrite_source = rewrite_source if rewrite_source != "none" else "teach"
                # a taught phrase may stand for several requests, stored joined by "|"
                parts = [p.strip() for p in expanded.split("|") if p.strip()] or [expanded]

        acts = [
            self._act(part, user_id, endpoint, now, prefs, pinned, stages if i == 0 else {}, retrieve=len(parts) == 1)
            for i, part in enumerate(parts)
        ]
        cands, top, res, outcome, snapshot = acts[0][:5]
        if acts[0][5] is not None and len(acts) == 1:
            nlu_text, rewrite_source = acts[0][5].text, acts[0][5].source
        if len(acts) > 1:
            stages["parts"] = {
                "texts": parts,
                "status": [a[3].status for a in acts],
                "intents": [a[1].intent if a[1] else None for a in acts],
            }
            failed = next((a[3] for a in acts if a[3].status != "success"), None)
            outcome = Outcome(
                failed.status if failed else "success",
                " ".join(a[3].response for a in acts),
                [d for a in acts for d in a[3].changed],
            )
            snapshot = {k: v for a in reversed(acts) for k, v in a[4].items()}

        confidence = _confidence(top, res)
        asks = False
        if self.feedback_policy is not None and outcome.status != "no_match":
            asks = self.feedback_policy.should_ask(
                user_id=user_id, now=now, confidence=confidence, rewritten=rewrite_source != "none"
            )
        response = outcome.response + (f" {FEEDBACK_QUESTION}" if asks else "")
        turn = self._turn(
            ids, user_id, endpoint, now, text, asr_confidence, barge_in, started, stages,
            rewritten_text=nlu_text if nlu_text != text else None, rewrite_source=rewrite_source,
            nlu_intent=top.intent if top else None, nlu_slots=dict(top.slots) if top else {},
            nlu_confidence=confidence, resolved_entities=_entities(res), result_status=outcome.status,
            response_text=response, device_state_snapshot=snapshot,
        )  # fmt: skip
        done = [Act(a[1], a[2], a[3]) for a in acts]
        return self._emit(Interpretation(turn, stages, response, cands, asks, done))

    def _act(
        self,
        text: str,
        user_id: str,
        endpoint: Endpoint,
        now: datetime,
        prefs: Sequence[Preference],
        pinned: list[str],
        stages: dict[str, dict[str, Any]],
        retrieve: bool = True,
    ) -> tuple[list[Candidate], Candidate | None, Resolution | None, Outcome, dict[str, Any], Rewrite | None]:
        """NLU -> context -> ER -> execute for one request, recording each stage into ``stages``. A request that
        fails before execution (no reading, no entity, low confidence) goes to the retriever first; if it returns
        a working utterance, that is understood and executed instead (and returned)."""
        t = time.perf_counter()
        area = endpoint.area if self.context else None
        hyps = self.nlu.parse(text, area=area)
        loose = not hyps
        if loose:
            hyps = parse_loose(self.nlu, text)
        stages["nlu"] = {"ms": _ms(t), "loose": loose, "top": [h.to_json() for h in hyps[:TOP_K]]}

        t = time.perf_counter()
        cands = ctx.expand(hyps, self.home)
        if self.context and cands:
            situation = Situation(
                home=self.home,
                endpoint=endpoint,
                now=now.astimezone(self.tz),
                state=self.state,
                person=next((p for p in self.home.people if p.id == user_id), None),
                preferences=prefs,
                routines=self.parts.routines.get(user_id, ()),
            )
            _pin(cands, pinned, self.home)
            cands = ctx.score(cands, situation)
        stages["context"] = {"ms": _ms(t), "enabled": self.context, "top": [c.to_json() for c in cands[:TOP_K]]}

        top = cands[0] if cands else None
        t = time.perf_counter()
        res = self.parts.resolver.resolve(top, endpoint=endpoint, use_area=self.context) if top else None
        stages["er"] = {"ms": _ms(t), **(res.to_json() if res else {"status": "skipped"})}

        if retrieve and self.retriever is not None and _failing(top, res):
            t = time.perf_counter()
            found = self.retriever.retrieve(text, user_id=user_id, home=self.home, endpoint=endpoint, now=now)
            stages["retrieval"] = {"ms": _ms(t), "applied": found is not None}
            if found is not None:
                stages["retrieval"].update(text=found.text, score=found.score)
                *act, _ = self._act(found.text, user_id, endpoint, now, prefs, pinned, stages, retrieve=False)
                return (*act, found)  # type: ignore[return-value]

        t = time.perf_counter()
        snapshot = self._snapshot(endpoint, res)
        outcome = (
            execute(top, res, self.world, endpoint=endpoint, now=now)
            if top is not None and res is not None
            else Outcome("no_match", "Sorry, I didn't understand that.")
        )
        stages["execute"] = {"ms": _ms(t), "status": outcome.status, "changed": outcome.changed}
        return cands, top, res, outcome, snapshot, None

    def _emit(self, interpretation: Interpretation) -> Interpretation:
        turn = interpretation.turn
        self._last[turn.user_id] = turn
        if self.sink is not None:
            self.sink(turn)
        return interpretation

    def _ids(
        self, user_id: str, now: datetime, session_id: str | None, dialogue_id: str | None, turn_id: str | None
    ) -> tuple[str, str, str]:
        """Sessions and dialogues split on silence gaps when the caller does not supply ids (the simulator does)."""
        self._count += 1
        seed = f"{self._salt}|{self.home.id}|{user_id}|{now.isoformat()}|{self._count}"
        if session_id is None:
            prev = self._session.get(user_id)
            if prev is None or (now - prev[0]).total_seconds() > SESSION_GAP_S:
                session_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "s" + seed))
            else:
                session_id = prev[1]
        self._session[user_id] = (now, session_id)
        if dialogue_id is None:
            prevd = self._dialogue.get(user_id)
            if prevd is None or (now - prevd[0]).total_seconds() > DIALOGUE_GAP_S:
                dialogue_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "d" + seed))
            else:
                dialogue_id = prevd[1]
        self._dialogue[user_id] = (now, dialogue_id)
        return session_id, dialogue_id, turn_id or str(uuid.uuid5(uuid.NAMESPACE_URL, "t" + seed))

    def _snapshot(self, endpoint: Endpoint, res: Resolution | None) -> dict[str, Any]:
        """State before execution of the devices the turn is about, and of the speaker's room."""
        ids = set(res.devices if res else ()) | {d.id for d in self.home.devices_in(endpoint.area)}
        return {i: dict(self.state[i]) for i in sorted(ids) if i in self.state}

    def _turn(
        self,
        ids: tuple[str, str, str],
        user_id: str,
        endpoint: Endpoint,
        now: datetime,
        text: str,
        asr_confidence: float | None,
        barge_in: bool,
        started: float,
        stages: dict[str, dict[str, Any]],
        **fields: Any,
    ) -> Turn:
        latency = _ms(started)
        stages["total"] = {"ms": latency}
        return Turn(
            turn_id=ids[2],
            dialogue_id=ids[1],
            session_id=ids[0],
            user_id=user_id,
            home_id=self.home.id,
            device_id=endpoint.id,
            device_type=endpoint.type,
            ts=now.astimezone(UTC),
            area=endpoint.area,
            asr_text=text,
            asr_confidence=None if asr_confidence is None else max(0.0, min(1.0, asr_confidence)),
            barge_in=barge_in,
            response_latency_ms=latency,
            trace=stages,
            **fields,
        )


def _expand_preferences(text: str, prefs: Sequence[Preference], home: Home) -> tuple[str, list[str], list[str]]:
    """Taught phrases stand for whole utterances; taught device aliases become the device's real name (and the
    device is pinned, since that name may be shared by devices in other rooms)."""
    said = normalize(text)
    for p in prefs:
        if p.kind == "phrase" and normalize(p.key) == said:
            return p.value, [f"phrase:{p.key}"], []
    used: list[str] = []
    pinned: list[str] = []
    devices = {d.id: d for d in home.devices}
    for p in sorted((p for p in prefs if p.kind == "device_alias" and p.key), key=lambda p: -len(p.key)):
        key = normalize(p.key)
        if f" {key} " in f" {said} " and p.value in devices:
            said = f" {said} ".replace(f" {key} ", f" {normalize(devices[p.value].name)} ").strip()
            used.append(f"device_alias:{p.key}")
            pinned.append(p.value)
    return (said if used else text), used, pinned


def _pin(cands: list[Candidate], pinned: list[str], home: Home) -> None:
    """A candidate naming a pinned device's name means that device, not its namesake in the speaker's room."""
    names = {normalize(home.device(d).name): d for d in pinned}
    for cand in cands:
        name = cand.slots.get("name")
        if isinstance(name, str) and name in {d.id for d in home.devices}:
            match = names.get(normalize(home.device(name).name))
            if match:
                cand.slots["name"] = match
                cand.features["device_alias"] = ctx.W_PREFERENCE


def _failing(top: Candidate | None, res: Resolution | None) -> bool:
    """No reading, an entity that did not resolve, or a reading too unsure to act on."""
    return top is None or res is None or res.status != "ok" or _confidence(top, res) < LOW_CONFIDENCE


def _confidence(top: Candidate | None, res: Resolution | None) -> float:
    if top is None:
        return 0.0
    return round(top.score * (res.confidence if res is not None and res.status == "ok" else 0.5), 4)


def _entities(res: Resolution | None) -> dict[str, Any]:
    if res is None:
        return {}
    return {"status": res.status, "devices": res.devices, "area": res.area, "confidence": round(res.confidence, 4)}


def _explicit(kind: str | None) -> ExplicitFeedback | None:
    if kind in ("yes", "no", "correction", "unsatisfied"):
        return kind  # type: ignore[return-value]
    return None


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000.0, 3)

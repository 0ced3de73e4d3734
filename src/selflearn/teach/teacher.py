"""Teachable AI: users tell the assistant what they mean, and it is used on the very next request.

Three ways in, one per-user dialogue state kept by the :class:`Teacher`:

* **statements** at any time: "I'm a Warriors fan", "my favourite music is jazz", "when I say movie night I mean
  turn on the TV", "Wilkerson is the one in California", "the big light is the living room light";
* **guided Q&A** when the user asks for it ("learn my preferences"): a few questions about team, food, music and
  home names;
* **teachable moments** started by the system: a request failed and the user says it again word for word, or the
  user said the answer was wrong -> "Would you like to teach me what you meant?".

Values are canonicalised against a small shipped vocabulary (``data/teach/vocabulary.yaml``) with rapidfuzz, so
"warriers" and "the Dubs" both become "Golden State Warriors". Anything the teacher cannot place gets a clarifying
question, never a silent accept. Results are :class:`~selflearn.schema.Preference` records, one set per user, kept
in a :class:`PreferenceStore` (the log store in production, :class:`MemoryPreferences` in the simulator). Answers to
"Did I get that right?" are handled here too (parsing in :mod:`selflearn.runtime.feedback`), because they arrive as
the user's next utterance exactly like a teaching answer does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import get_args

from rapidfuzz import fuzz, process

from selflearn.errors import UsageError
from selflearn.home import Home
from selflearn.runtime import runtime
from selflearn.runtime.feedback import FEEDBACK_QUESTION, FeedbackAnswer, FeedbackPolicy, PendingRewrites, parse_answer
from selflearn.schema import MAX_KEY_CHARS, MAX_VALUE_CHARS, Feedback, Preference, PreferenceKind, Turn
from selflearn.teach.preferences import PreferenceStore, applicable
from selflearn.teach.statements import (
    _RE,
    Parse,
    Source,
    Taught,
    Unclear,
    _actions,
    _describe,
    _strip_filler,
    _taste,
    parse_statement,
    vocabulary,
)
from selflearn.text import normalize

FAILED_STATUSES = frozenset({"no_match", "no_entity", "failed"})


TEACH_OFFER = "Would you like to teach me what you meant?"


TEACHER_STATUSES = frozenset({"teach", "feedback"})


REQUEST_MEMORY = timedelta(minutes=5)  # how long "that's wrong" / "I meant ..." may refer back to a request


class TooLong(UsageError):
    """A statement understood whose phrase or value is longer than a preference holds (the teacher says so)."""


@dataclass(frozen=True)
class TeachReply(runtime.TeachReply):
    """The runtime's teach reply plus the records it produced (the runtime logs the turn; callers may keep these)."""

    feedback: Feedback | None = None
    """The feedback record it produced, if any."""
    preferences: tuple[Preference, ...] = ()
    """The preferences it stored."""


@dataclass
class _Guided:
    step: int = 0
    tries: int = 0
    taught: list[Preference] = field(default_factory=list)


@dataclass
class _Clarify:
    unclear: Unclear
    source: Source
    guided: _Guided | None = None


@dataclass
class _Offer:
    failed_text: str
    turn_id: str


@dataclass
class _AwaitMeaning:
    failed_text: str
    turn_id: str


_State = _Guided | _Clarify | _Offer | _AwaitMeaning


GUIDED_QUESTIONS: tuple[tuple[PreferenceKind | None, str], ...] = (
    ("team", "Which sports team do you support?"),
    ("cuisine", "What kind of food do you like best?"),
    ("music_genre", "What kind of music do you like?"),
    (None, "Is there something at home you call by your own name? For example 'the big light is the floor lamp'."),
)


_GUIDED_START = _RE(
    r"^(?:please )?(?:learn|teach you|i want to teach you|let me teach you|can i teach you|ask me about)"
    r"(?: about)?(?: my)?(?: preferences| tastes| what i like| something| things)?$"
)


_SKIP = _RE(r"^(?:skip|no|nope|none|nothing|pass|next|no thanks|i don't know|not really|no one|nobody)$")


_STOP = _RE(r"^(?:stop|cancel|quit|never mind|nevermind|that's all|that's it|done|enough|exit)$")


_YES = _RE(r"^(?:yes|yeah|yep|sure|ok|okay|yes please|please|go ahead|alright|of course)$")


_YES_MEANING = _RE(
    r"^(?:yes|yeah|yep|sure|ok|okay)\s+(?:(?:i meant|i mean|it means|that means)\s+)?(?P<m>\w+(?:\s+\w+)+)$"
)


_UNSATISFIED = _RE(
    r"^(?:(?:no|ugh|nope)\s+)*(?:(?:that's|that is|that was|this is) (?:wrong|not right|incorrect|not it|"
    r"not what i (?:meant|wanted|asked|asked for|said))|wrong|wrong answer|not what i meant|you got it wrong)$"
    r"|^(?:ugh |oh )?(?:no|nope)(?: no)*$"  # a bare "no" right after an answer is about that answer
)


_LIST = _RE(r"^what (?:do you know about me|are my preferences|have i taught you)$")


_FORGET = _RE(r"^forget (?:my preferences|everything i taught you|what i taught you)$")


_KIND_ANSWER: dict[str, PreferenceKind] = {
    "team": "team",
    "a team": "team",
    "sports team": "team",
    "a sports team": "team",
    "food": "cuisine",
    "a kind of food": "cuisine",
    "kind of food": "cuisine",
    "cuisine": "cuisine",
    "music": "music_genre",
    "a kind of music": "music_genre",
    "kind of music": "music_genre",
    "genre": "music_genre",
}


class Teacher:
    """Gets the first look at every utterance (see ``Runtime``): teaching, feedback answers, or ``None`` to pass.

    All dialogue state is per user, in memory; one user's answers can never land in another user's preferences
    because every record is built from the ``user_id`` of the utterance being handled.
    """

    def __init__(
        self,
        store: PreferenceStore,
        *,
        policy: FeedbackPolicy | None = None,
        pending: PendingRewrites | None = None,
        on_feedback: Callable[[Feedback], None] | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.pending = pending
        self.on_feedback = on_feedback
        self._state: dict[str, _State] = {}
        self._last_request: dict[str, Turn] = {}

    def preferences(self, user_id: str) -> list[Preference]:
        """The ``preferences`` callable the runtime's context re-ranker and entity resolution read."""
        return self.store.preferences(user_id)

    def in_dialogue(self, user_id: str) -> bool:
        return user_id in self._state

    def forget(self, user_id: str) -> None:
        """Drop the user's dialogue state (part of forgetting a user)."""
        self._state.pop(user_id, None)
        self._last_request.pop(user_id, None)

    def handle(
        self, text: str, *, user_id: str, home: Home, now: datetime, last_turn: Turn | None
    ) -> TeachReply | None:
        try:
            reply = self._handle(text, user_id=user_id, home=home, now=now, last_turn=last_turn)
        except TooLong as e:  # understood, but more than a preference holds: say so instead of failing the turn
            reply = TeachReply(str(e), "teach")
        if reply is not None and reply.feedback is not None and self.on_feedback is not None:
            self.on_feedback(reply.feedback)
        return reply

    def _handle(
        self, text: str, *, user_id: str, home: Home, now: datetime, last_turn: Turn | None
    ) -> TeachReply | None:
        form = normalize(text)
        if not form:
            return None
        if last_turn is not None and last_turn.user_id != user_id:
            last_turn = None
        state = self._state.pop(user_id, None)
        asked = self.policy.take_pending(user_id) if self.policy is not None else False
        asked = asked or (last_turn is not None and last_turn.response_text.endswith(FEEDBACK_QUESTION))
        if state is not None:
            reply = self._continue(state, form, text, user_id=user_id, home=home, now=now)
            if reply is not None:
                return reply
        if _LIST.match(form):
            return self._list(user_id, home)
        if _FORGET.match(form):
            n = self.store.delete_preferences(user_id)
            return TeachReply(f"Done, I forgot {n} thing{'s' if n != 1 else ''} you taught me.", "teach")
        request = self._request_before(user_id, last_turn, now)
        if request is not None:
            reply = self._about_last_turn(form, text, user_id=user_id, now=now, last_turn=request, asked=asked)
            if reply is not None:
                return reply
        if _GUIDED_START.match(form):
            guided = _Guided()
            self._state[user_id] = guided
            return TeachReply(f"Happy to learn. {GUIDED_QUESTIONS[0][1]} You can say skip or stop.", "teach")
        parsed = parse_statement(text, home)
        if parsed is None:
            return None
        return self._apply(parsed, user_id=user_id, home=home, now=now, source="statement")

    # ---- the turn before: feedback answers, corrections, teachable moments

    def _request_before(self, user_id: str, last_turn: Turn | None, now: datetime) -> Turn | None:
        """The user's last request (not a lesson or an answer to the teacher), if recent: what feedback is about.
        "no" then "I meant X" corrects the request, not the "no"."""
        if last_turn is not None and last_turn.result_status not in TEACHER_STATUSES:
            self._last_request[user_id] = last_turn
            return last_turn
        request = self._last_request.get(user_id)
        return request if request is not None and now - request.ts <= REQUEST_MEMORY else None

    def _about_last_turn(
        self, form: str, text: str, *, user_id: str, now: datetime, last_turn: Turn, asked: bool
    ) -> TeachReply | None:
        answer = parse_answer(text, asked=asked)
        if answer is not None:
            return self._feedback(answer, text, user_id=user_id, now=now, last_turn=last_turn)
        if _UNSATISFIED.match(form):
            fb = _feedback_record(user_id, last_turn.turn_id, now, "no", text)
            self._state[user_id] = _Offer(last_turn.asr_text, last_turn.turn_id)
            return TeachReply(f"Sorry about that. {TEACH_OFFER}", "feedback", "unsatisfied", feedback=fb)
        fixed = self.pending is not None and self.pending.get(user_id, text) is not None
        if last_turn.result_status in FAILED_STATUSES and normalize(last_turn.asr_text) == form and not fixed:
            self._state[user_id] = _Offer(last_turn.asr_text, last_turn.turn_id)
            return TeachReply(f"I still don't understand {last_turn.asr_text!r}. {TEACH_OFFER}", "teach")
        return None

    def _feedback(
        self, answer: FeedbackAnswer, text: str, *, user_id: str, now: datetime, last_turn: Turn
    ) -> TeachReply:
        fb = _feedback_record(user_id, last_turn.turn_id, now, answer.kind, text, answer.correction)
        if answer.kind == "yes":
            return TeachReply("Great, thanks for telling me.", "feedback", "yes", feedback=fb)
        if answer.kind == "no":
            self._state[user_id] = _Offer(last_turn.asr_text, last_turn.turn_id)
            return TeachReply(f"Sorry. {TEACH_OFFER}", "feedback", "no", feedback=fb)
        assert answer.correction is not None
        source = last_turn.asr_text
        if self.pending is not None:
            self.pending.add(user_id, source, answer.correction, now)
        return TeachReply(
            f"Got it, next time {source!r} means {answer.correction!r}.",
            "feedback",
            "correction",
            answer.correction,
            feedback=fb,
        )

    # ---- multi-turn states

    def _continue(
        self, state: _State, form: str, text: str, *, user_id: str, home: Home, now: datetime
    ) -> TeachReply | None:
        if _STOP.match(form):
            return TeachReply("OK, stopped.", "teach")
        if isinstance(state, _Guided):
            return self._guided(state, form, text, user_id=user_id, home=home, now=now)
        if isinstance(state, _Clarify):
            return self._clarified(state, form, user_id=user_id, home=home, now=now)
        if isinstance(state, _Offer):
            if _YES.match(form):
                self._state[user_id] = _AwaitMeaning(state.failed_text, state.turn_id)
                return TeachReply(
                    f"OK. When you say {state.failed_text!r}, what should I do? Say it the way I understand it.",
                    "teach",
                )
            if _SKIP.match(form):
                return TeachReply("OK, no problem.", "teach")
            m = _YES_MEANING.match(form)  # "yes, I meant turn on the lamp": offer taken and answered at once
            if m is None:
                return None
            form = m["m"]
        return self._teach_moment(state, form, text, user_id=user_id, home=home, now=now)

    def _teach_moment(
        self, state: _Offer | _AwaitMeaning, meaning: str, text: str, *, user_id: str, home: Home, now: datetime
    ) -> TeachReply:
        taught = Taught("phrase", normalize(state.failed_text), _actions(meaning))
        reply = self._apply(taught, user_id=user_id, home=home, now=now, source="moment")
        fb = _feedback_record(user_id, state.turn_id, now, "teach", text, taught.value)
        return TeachReply(reply.response, "teach", "teach", feedback=fb, preferences=reply.preferences)

    def _guided(self, state: _Guided, form: str, text: str, *, user_id: str, home: Home, now: datetime) -> TeachReply:
        kind, _ = GUIDED_QUESTIONS[state.step]
        if _SKIP.match(form):
            return self._next_question(state, user_id, "OK.")
        parsed = parse_statement(text, home)
        if parsed is None and kind is not None:
            parsed = _taste(form, (kind,))
        if isinstance(parsed, Taught):
            pref = self._put(parsed, user_id=user_id, home=home, now=now, source="guided")
            state.taught.append(pref)
            return self._next_question(state, user_id, f"Got it: {_describe(parsed)}.", (pref,))
        if isinstance(parsed, Unclear) and state.tries == 0:
            state.tries += 1
            self._state[user_id] = _Clarify(parsed, "guided", state)
            return TeachReply(parsed.question(), "teach")
        return self._next_question(state, user_id, "Sorry, I didn't get that; let's skip it.")

    def _next_question(
        self, state: _Guided, user_id: str, prefix: str, prefs: tuple[Preference, ...] = ()
    ) -> TeachReply:
        state.step += 1
        state.tries = 0
        if state.step < len(GUIDED_QUESTIONS):
            self._state[user_id] = state
            return TeachReply(f"{prefix} {GUIDED_QUESTIONS[state.step][1]}", "teach", preferences=prefs)
        n = len(state.taught)
        return TeachReply(
            f"{prefix} Thanks, I learned {n} thing{'s' if n != 1 else ''} about you.", "teach", preferences=prefs
        )

    def _clarified(self, state: _Clarify, form: str, *, user_id: str, home: Home, now: datetime) -> TeachReply | None:
        unclear = state.unclear
        choice: Taught | None = None
        if unclear.options:
            if _YES.match(form) and len(unclear.options) == 1:
                choice = unclear.options[0]
            else:
                best = process.extractOne(
                    form, [normalize(_describe(o)) for o in unclear.options], scorer=fuzz.WRatio, score_cutoff=60
                )
                if best is not None:
                    choice = unclear.options[best[2]]
        kind = _KIND_ANSWER.get(_strip_filler(form)) or _KIND_ANSWER.get(form)
        if choice is None and kind is not None and kind in unclear.kinds:
            retry = vocabulary().lookup(unclear.phrase, (kind,))
            choice = Taught(kind, "", retry[0][1] if len(retry) == 1 else _tidy(kind, unclear.phrase))
        if choice is None:
            if state.guided is not None:
                return self._next_question(state.guided, user_id, "Sorry, I didn't get that; let's skip it.")
            if _SKIP.match(form):
                return TeachReply("OK, I won't remember it.", "teach")
            return None
        pref = self._put(choice, user_id=user_id, home=home, now=now, source=state.source)
        if state.guided is not None:
            state.guided.taught.append(pref)
            return self._next_question(state.guided, user_id, f"Got it: {_describe(choice)}.", (pref,))
        return TeachReply(f"Got it: {_describe(choice)}. I'll remember that.", "teach", preferences=(pref,))

    # ---- storing

    def _apply(self, parsed: Parse, *, user_id: str, home: Home, now: datetime, source: Source) -> TeachReply:
        if isinstance(parsed, Unclear):
            self._state[user_id] = _Clarify(parsed, source)
            return TeachReply(parsed.question(), "teach")
        pref = self._put(parsed, user_id=user_id, home=home, now=now, source=source)
        if parsed.kind == "phrase":
            msg = f"Got it: when you say {parsed.key!r} I'll do {parsed.value!r}."
        elif parsed.kind == "place":
            msg = f"Got it: {parsed.key.title()} is {parsed.value}."
        elif parsed.kind == "device_alias":
            msg = f"Got it: {parsed.key!r} is the {home.device(parsed.value).name}."
        else:
            msg = f"Got it: you like {_describe(parsed)}. I'll remember that."
        return TeachReply(msg, "teach", preferences=(pref,))

    def _put(self, t: Taught, *, user_id: str, home: Home, now: datetime, source: Source) -> Preference:
        if len(t.key) > MAX_KEY_CHARS:
            raise TooLong(f"That phrase is too long for me to remember: at most {MAX_KEY_CHARS} characters.")
        if len(t.value) > MAX_VALUE_CHARS:
            raise TooLong(f"That is too long for me to remember: at most {MAX_VALUE_CHARS} characters.")
        scope = home.id if t.kind == "device_alias" else "*"
        pref = Preference(user_id=user_id, kind=t.kind, key=t.key, value=t.value, scope=scope, ts=now, source=source)
        self.store.put_preference(pref)
        return pref

    def _list(self, user_id: str, home: Home) -> TeachReply:
        prefs = applicable(self.store.preferences(user_id), home.id)
        if not prefs:
            return TeachReply("You haven't taught me anything yet. Say 'learn my preferences' to start.", "teach")
        said = "; ".join(_describe(Taught(p.kind, p.key, p.value)) for p in prefs)
        return TeachReply(f"You taught me: {said}.", "teach")


def _tidy(kind: PreferenceKind, phrase: str) -> str:
    return phrase if kind == "music_genre" else phrase.title()


def _feedback_record(
    user_id: str, turn_id: str, now: datetime, kind: str, text: str, correction: str | None = None
) -> Feedback:
    fid = uuid.uuid5(uuid.NAMESPACE_URL, f"selflearn:feedback:{user_id}:{turn_id}:{now.isoformat()}:{text}")
    fkind = kind if kind in get_args(Feedback.model_fields["kind"].annotation) else "no"
    return Feedback(
        feedback_id=f"fb-{fid}",
        turn_id=turn_id,
        user_id=user_id,
        ts=now,
        kind=fkind,
        text=text,
        correction_text=correction,
    )

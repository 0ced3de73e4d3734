"""The ambient home simulator: people with routines, tastes and habits talk to the real runtime for days.

Every utterance goes through the ASR noise model and then the one runtime (``pipeline.runtime.Runtime``); the turn
it logs is what learners see. Beside it the simulator writes the truth (``Gold``): what was really said and meant,
whether the goal was met, the earliest stage that failed, which turn a rephrase rephrases, and what three
simulated annotators would have said. After a bad result people barge in, say "no", rephrase into a wording that
works, repeat themselves more clearly, or give up, with the probabilities in :class:`SimConfig`.

Deterministic: ``run_day(d)`` gives the same records for the same seed, homes and day (each day starts from the
homes' configured device states; response latency is simulated, not measured).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from selflearn.home import Home, HomeError, Person
from selflearn.runtime.rewrites import Retriever, Rewriter
from selflearn.runtime.runtime import FeedbackPolicy, Interpretation, Runtime, Teacher
from selflearn.schema import FailurePoint, Feedback, Gold, Preference, Turn
from selflearn.sim.annotators import AnnotatorNoise, annotate
from selflearn.sim.asr import FUNCTION_WORDS, AsrConfig, AsrModel, AsrResult
from selflearn.sim.goals import INTENTS, SCENES, Goal, GoalFactory, opposite_kind
from selflearn.sim.heldout import avoid, is_heldout
from selflearn.sim.judge import judge, judge_unaddressed
from selflearn.sim.names import COMMON_NAMES, DEVICE_WORDS, FIRST_NAMES, GENRES
from selflearn.sim.phrasing import NEGATIVES, random_draw, rephrase
from selflearn.sim.routines import routine_goal
from selflearn.sim.users import SimUser, make_user
from selflearn.sim.variation import Phrasing

Preferences = Callable[[str], Sequence[Preference]]
RECOGNIZER_WORDS = (*FIRST_NAMES, *COMMON_NAMES, *GENRES, *DEVICE_WORDS)


@dataclass(frozen=True)
class SimConfig:
    """World size and behaviour probabilities. Defaults give an untrained defect rate of roughly a quarter."""

    asr_rate: float = 0.2
    """Scale of the SLURP-calibrated ASR error rates (1.0 = SLURP's far-field ~19 % WER)."""
    rare_name_error: float = 0.3
    """P(misrecognizing a name the recognizer does not know, e.g. a small town)."""
    requests_per_day: float = 7.0
    """Requests per person and day on top of routines (Poisson mean)."""
    false_wakes_per_day: float = 0.5
    """False wakes per home and day: TV/room chatter that wakes the assistant."""
    scene_probability: float = 0.08
    """Share of requests that are a multi-step scene."""
    idiosyncratic: float = 0.15
    """Share of (person, goal kind) whose habitual wording is from the shared odd pool."""
    phrasing: Phrasing = "templates"
    """Either "templates" (few hand-written and SLURP wordings, shared) or "realistic" (long tail, sim/variation)."""
    habitual: float = 0.85
    """P(a person uses their habitual wording)."""
    private_alias: float = 0.25
    """P(a person has a private name for a device)."""
    barge_in: float = 0.4
    """P(interrupting a wrong or unhelpful response)."""
    barge_in_on_success: float = 0.03
    """P(interrupting a right answer once heard enough: barge-in is not proof)."""
    negative: float = 0.15
    """P(saying "no, that's wrong" after a bad result)."""
    answer_feedback: float = 0.8
    """P(answering "Did I get that right?")."""
    correction: float = 0.3
    """P(a "no" answer says what was meant: "no i meant ...")."""
    abandon: float = 0.2
    """P(giving up after a failure, before patience runs out)."""
    clarity_on_retry: float = 0.5
    """ASR error scale when repeating/rephrasing (people speak slower and clearer)."""
    teach_probability: float = 0.0
    """P(teaching after a failure, when a teacher and a teaching behaviour are given)."""
    annotators: AnnotatorNoise = field(default_factory=AnnotatorNoise)
    """How often the simulated annotators err."""
    start: date = date(2026, 1, 5)
    """The first simulated day."""


@dataclass
class DayLog:
    turns: list[Turn] = field(default_factory=list)
    """The day's turns."""
    gold: list[Gold] = field(default_factory=list)
    """The truth behind them."""
    feedback: list[Feedback] = field(default_factory=list)
    """Explicit feedback given that day."""

    def extend(self, other: DayLog) -> None:
        self.turns.extend(other.turns)
        self.gold.extend(other.gold)
        self.feedback.extend(other.feedback)


class TeachingBehaviour(Protocol):
    """What a person says to teach the assistant after ``turn`` failed ``goal`` (None: not this time)."""

    def utterance(self, goal: Goal, user: SimUser, turn: Turn, rng: random.Random) -> str | None: ...


@dataclass
class _Pending:
    """A turn and its gold fields, finished when its goal's outcome is known."""

    turn: Turn
    true_text: str
    goal: Goal
    failure_point: FailurePoint
    rephrase_of: str | None
    barge_in: bool = False
    control: bool = False  # a "no" or an answer to a question, not a request


@dataclass
class _Day:
    home: Home
    day: int
    rng: random.Random
    runtime: Runtime
    shadow: Runtime
    factory: GoalFactory
    teacher: Teacher | None
    log: DayLog
    counter: int = 0

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.home.id}-d{self.day}-{self.counter}"


class Simulation:
    def __init__(
        self,
        homes: Sequence[Home],
        *,
        seed: int,
        config: SimConfig = SimConfig(),
        teaching: TeachingBehaviour | None = None,
    ) -> None:
        if not homes:
            raise ValueError("a simulation needs at least one home")
        self.homes = list(homes)
        self.seed = seed
        self.config = config
        self.teaching = teaching
        self.users: dict[str, list[SimUser]] = {}
        for home in self.homes:
            people = home.people or [Person(id=f"{home.id}.guest", name="Guest")]
            self.users[home.id] = [
                make_user(
                    home,
                    p,
                    seed,
                    idiosyncratic=config.idiosyncratic,
                    private_alias=config.private_alias,
                    phrasing=config.phrasing,
                )
                for p in people
            ]
        # The recognizer's vocabulary: real words plus common names, never a particular home's (so a home's rare
        # names stay out of vocabulary, and a run split over processes by home gives the same records).
        asr = AsrConfig(rate=config.asr_rate, oov_name_floor=config.rare_name_error)
        self.asr = AsrModel(asr, vocabulary=RECOGNIZER_WORDS)
        self.intents = list(INTENTS)
        self.factories = {h.id: GoalFactory(h) for h in self.homes}
        self._routine_goals: dict[tuple[str, str, str, str], Goal | None] = {}

    def run_day(
        self,
        day: int,
        *,
        rewriter: Rewriter | None = None,
        preferences: Preferences | None = None,
        feedback_policy: FeedbackPolicy | None = None,
        teacher: Teacher | None = None,
        retriever: Retriever | None = None,
        on_home: Callable[[Home], None] | None = None,
    ) -> DayLog:
        """One day in every home: routines, requests, scenes, false wakes, with the given learned components.
        ``retriever``: the runtime's fallback for failing requests (default: the rewriter's own, if it has one).
        ``on_home`` is called after each home's day (progress bars)."""
        log = DayLog()
        for home in self.homes:
            rng = random.Random(f"day:{self.seed}:{day}:{home.id}")
            runtime = Runtime(
                home,
                rewriter=rewriter,
                preferences=preferences,
                feedback_policy=feedback_policy,
                teacher=teacher,
                retriever=retriever,
            )
            shadow = Runtime(home, rewriter=rewriter, preferences=preferences, retriever=retriever)
            ctx = _Day(home, day, rng, runtime, shadow, self.factories[home.id], teacher, log)
            for when, user, kinds, text in self._agenda(ctx):
                self._episode(ctx, when, user, kinds, text)
            if on_home is not None:
                on_home(home)
        return log

    # ---- the day's agenda
    def _agenda(self, ctx: _Day) -> list[tuple[datetime, SimUser | None, tuple[str, ...], str | None]]:
        rng, cfg = ctx.rng, self.config
        tz = ZoneInfo(ctx.home.timezone)
        midnight = datetime.combine(cfg.start + timedelta(days=ctx.day), datetime.min.time(), tzinfo=tz)
        weekday = (cfg.start + timedelta(days=ctx.day)).weekday()
        events: list[tuple[datetime, SimUser | None, tuple[str, ...], str | None]] = []
        for user in self.users[ctx.home.id]:
            for routine in user.person.routines:
                if weekday in routine.days and rng.random() < routine.probability:
                    hh, mm = (int(x) for x in routine.at.split(":"))
                    at = midnight + timedelta(hours=hh, minutes=mm, seconds=rng.uniform(-600, 600))
                    events.append((at, user, ("routine",), routine.say))
            for _ in range(_poisson(rng, cfg.requests_per_day)):
                at = midnight + timedelta(seconds=rng.uniform(6.5 * 3600, 23.5 * 3600))
                if ctx.factory.scenes and rng.random() < cfg.scene_probability:
                    kinds = SCENES[rng.choice(ctx.factory.scenes)]
                else:
                    kinds = (ctx.factory.draw_kind(rng),)
                events.append((at, user, kinds, None))
        for _ in range(_poisson(rng, cfg.false_wakes_per_day)):
            events.append(
                (midnight + timedelta(seconds=rng.uniform(7 * 3600, 24 * 3600 - 60)), None, ("chatter",), None)
            )
        events.sort(key=lambda e: (e[0], e[1].id if e[1] else ""))
        return [(at.astimezone(UTC), u, k, t) for at, u, k, t in events]

    # ---- one episode (a goal, possibly several steps) and one step's dialogue
    def _episode(
        self, ctx: _Day, when: datetime, user: SimUser | None, kinds: tuple[str, ...], text: str | None
    ) -> None:
        episode = ctx.next_id("g")
        pending: list[_Pending] = []
        if user is None:
            endpoint = ctx.rng.choice(ctx.home.endpoints).id
            chatter = ctx.factory.chatter()
            said = random_draw("chatter", chatter, ctx.rng)
            self._unaddressed(ctx, when, None, endpoint, chatter, said, episode, pending)
            self._finish(ctx, episode, pending, success=not any(p.failure_point != "correct" for p in pending))
            return
        endpoint = ctx.rng.choice(user.endpoints)
        area = ctx.home.endpoint(endpoint).area
        if area is None:
            raise HomeError(f"endpoint {endpoint!r} has no area: simulated people talk to endpoints placed in a room")
        success = True
        for step, kind in enumerate(kinds):
            goal = self._goal(ctx, user, kind, area, text)
            if goal is None:
                continue
            dialogue = f"{episode}.{step}"
            if goal.intent is None:
                said = text or random_draw(goal.kind, goal, ctx.rng)
                self._unaddressed(ctx, when, user, endpoint, goal, said, episode, pending, dialogue)
                success = False
            else:
                ok, when = self._dialogue(ctx, when, user, endpoint, goal, episode, dialogue, pending)
                success = success and ok
            when += timedelta(seconds=ctx.rng.uniform(4, 15))
        self._finish(ctx, episode, pending, success=success)

    def _goal(self, ctx: _Day, user: SimUser, kind: str, area: str, text: str | None) -> Goal | None:
        """The goal of one step; None for a routine whose wording matches nothing the home can do (skipped)."""
        if kind == "routine" and text is not None:
            key = (ctx.home.id, user.id, area, text)
            if key not in self._routine_goals:
                self._routine_goals[key] = routine_goal(ctx.factory, user, area, text)
            return self._routine_goals[key]
        goal = ctx.factory.make(kind, user.person, user.tastes, area, ctx.rng)
        for _ in range(3):  # nobody asks to turn on a light that is already on
            if not goal.effects or not all(ctx.runtime.state.get(d, {}).get(k) == v for d, k, v in goal.effects):
                break
            goal = ctx.factory.make(opposite_kind(kind), user.person, user.tastes, area, ctx.rng)
        return goal

    def _dialogue(
        self,
        ctx: _Day,
        when: datetime,
        user: SimUser,
        endpoint: str,
        goal: Goal,
        episode: str,
        dialogue: str,
        pending: list[_Pending],
    ) -> tuple[bool, datetime]:
        cfg, rng = self.config, ctx.rng
        text, naming = user.wording(goal, rng, habitual=cfg.habitual)
        names = _name_words(goal, naming)
        clarity, previous, attempt = 1.0, None, 0
        while True:
            text = avoid(text)
            interp, fp = self._say(ctx, when, user.id, endpoint, text, goal, names, clarity, episode, dialogue)
            if fp == "nlu" and any(f" {v} " in f" {text} " for v in naming.values()):
                fp = "er"  # a name the home does not know: the entity is the problem, whichever stage gave up
            item = _Pending(interp.turn, text, goal, fp, previous)
            pending.append(item)
            when += timedelta(milliseconds=interp.turn.response_latency_ms or 0.0)
            if fp == "correct":
                if rng.random() < cfg.barge_in_on_success:  # cutting a long right answer short: not a defect
                    item.barge_in = True
                if interp.asks_feedback:
                    when = self._answer(ctx, when, user, endpoint, interp.turn, "yes", episode, dialogue, pending)
                return True, when
            wrong_action = interp.turn.result_status == "success"
            if rng.random() < cfg.barge_in * (1.5 if wrong_action else 1.0):
                item.barge_in = True
                when += timedelta(seconds=rng.uniform(0.8, 2.0))
            else:
                when += timedelta(seconds=rng.uniform(2.0, 5.0))
            if interp.asks_feedback:
                when = self._answer(ctx, when, user, endpoint, interp.turn, "no", episode, dialogue, pending)
            elif rng.random() < cfg.negative:
                neg = avoid(rng.choice(NEGATIVES))
                nint, _ = self._say(ctx, when, user.id, endpoint, neg, None, frozenset(), 1.0, episode, dialogue)
                pending.append(_Pending(nint.turn, neg, goal, "correct", None, control=True))
                when += timedelta(seconds=rng.uniform(1.5, 4.0))
            attempt += 1
            if attempt >= user.patience or rng.random() < cfg.abandon:
                return False, when
            if ctx.teacher is not None and self.teaching is not None and rng.random() < cfg.teach_probability:
                lesson = self.teaching.utterance(goal, user, interp.turn, rng)
                if lesson is not None:
                    lesson = avoid(lesson)
                    tint, _ = self._say(ctx, when, user.id, endpoint, lesson, None, frozenset(), 1.0, episode, dialogue)
                    pending.append(_Pending(tint.turn, lesson, goal, "correct", None, control=True))
                    when += timedelta(seconds=rng.uniform(3.0, 8.0))
            previous = interp.turn.turn_id
            if rng.random() < user.rephrase_bias:
                text = rephrase(goal, text, rng, official=bool(naming) or fp in ("er", "asr"))
                names = _name_words(goal, goal.official)
            clarity = cfg.clarity_on_retry

    def _say(
        self,
        ctx: _Day,
        when: datetime,
        user_id: str,
        endpoint: str,
        text: str,
        goal: Goal | None,
        names: frozenset[str],
        clarity: float,
        episode: str,
        dialogue: str,
    ) -> tuple[Interpretation, FailurePoint]:
        """Recognize, interpret, judge. A failed turn whose recognition differed from what was said is replayed
        with the true text on a shadow runtime in the same state: if that works, the ASR is to blame. ``text``
        must already avoid the held-out SLURP texts (``heldout.avoid``)."""
        heard = self._hear(text, ctx.rng, names=names, clarity=clarity)
        before = {k: dict(v) for k, v in ctx.runtime.state.items()} if heard.text != text and goal else None
        interp = ctx.runtime.interpret(
            heard.text, user_id=user_id, endpoint_id=endpoint, now=when, asr_confidence=heard.confidence,
            session_id=episode, dialogue_id=dialogue, turn_id=ctx.next_id("t"),
        )  # fmt: skip
        interp.turn = _simulated_timing(interp.turn, ctx.rng)
        if goal is None:
            return interp, "correct"
        ok, fp = judge(goal, interp.turn, ctx.runtime.state)
        if not ok and before is not None:
            ctx.shadow.state.clear()
            ctx.shadow.state.update(before)
            replay = ctx.shadow.interpret(
                text, user_id=user_id, endpoint_id=endpoint, now=when, session_id=episode, dialogue_id=dialogue,
                turn_id="replay",
            )  # fmt: skip
            ok_true, fp_true = judge(goal, replay.turn, ctx.shadow.state)
            fp = "asr" if ok_true else fp_true
        return interp, fp

    def _hear(
        self, text: str, rng: random.Random, *, names: frozenset[str] = frozenset(), clarity: float = 1.0
    ) -> AsrResult:
        """The ASR model's recognition of ``text``; one that lands on a held-out SLURP text is heard right."""
        heard = self.asr.transcribe(text, rng, names=names, clarity=clarity)
        return AsrResult(text, heard.confidence, 0) if is_heldout(heard.text) else heard

    def _unaddressed(
        self,
        ctx: _Day,
        when: datetime,
        user: SimUser | None,
        endpoint: str,
        goal: Goal,
        text: str,
        episode: str,
        pending: list[_Pending],
        dialogue: str | None = None,
    ) -> None:
        speaker = user.id if user else f"{ctx.home.id}.tv"
        text = avoid(text)
        heard = self._hear(text, ctx.rng)
        interp = ctx.runtime.interpret(
            heard.text, user_id=speaker, endpoint_id=endpoint, now=when, asr_confidence=heard.confidence,
            session_id=episode, dialogue_id=dialogue or f"{episode}.0", turn_id=ctx.next_id("t"),
        )  # fmt: skip
        turn = _simulated_timing(interp.turn, ctx.rng)
        _, fp = judge_unaddressed(goal, turn)
        pending.append(_Pending(turn, text, goal, fp, None, barge_in=fp != "correct" and ctx.rng.random() < 0.3))

    def _answer(
        self,
        ctx: _Day,
        when: datetime,
        user: SimUser,
        endpoint: str,
        asked: Turn,
        kind: Literal["yes", "no"],
        episode: str,
        dialogue: str,
        pending: list[_Pending],
    ) -> datetime:
        """Answer "Did I get that right?": yes, no, or a correction ("no i meant turn off the desk lamp"). When a
        teacher listens, the answer is an utterance through the runtime (the teacher makes the Feedback record);
        otherwise it arrives as a Feedback record directly (an app's thumbs up/down or typed correction)."""
        rng = ctx.rng
        if rng.random() >= self.config.answer_feedback:
            return when
        when += timedelta(seconds=rng.uniform(1.0, 3.0))
        goal, previous = pending[-1].goal, pending[-1].true_text
        correction = None
        if kind == "no" and rng.random() < self.config.correction:
            correction = avoid(rephrase(goal, previous, rng, official=True))
        said = "yes" if kind == "yes" else rng.choice(("no", "no it didn't", "not really"))
        if correction is not None:
            said = f"no i meant {correction}"
        said = avoid(said)
        if ctx.teacher is not None:
            interp, _ = self._say(ctx, when, user.id, endpoint, said, None, frozenset(), 1.0, episode, dialogue)
            pending.append(_Pending(interp.turn, said, goal, "correct", None, control=True))
        else:
            ctx.log.feedback.append(
                Feedback(
                    feedback_id=ctx.next_id("f"), turn_id=asked.turn_id, user_id=user.id, ts=when,
                    kind="correction" if correction else kind, text=said, correction_text=correction,
                )
            )  # fmt: skip
        return when + timedelta(seconds=1.0)

    def _finish(self, ctx: _Day, episode: str, pending: list[_Pending], *, success: bool) -> None:
        for item in pending:
            turn = item.turn.model_copy(update={"barge_in": True}) if item.barge_in else item.turn
            truth = {
                "goal_success": success,
                "failure_point": item.failure_point,
                "intent": None if item.control else item.goal.intent,
            }
            ctx.log.turns.append(turn)
            ctx.log.gold.append(
                Gold(
                    turn_id=turn.turn_id,
                    true_text=item.true_text,
                    true_intent=truth["intent"],
                    true_slots={} if item.control else item.goal.slots,
                    failure_point=item.failure_point,
                    goal_id=episode,
                    goal_success=success,
                    is_rephrase_of=item.rephrase_of,
                    is_impossible=item.goal.impossible and not item.control,
                    annotator_labels=annotate(truth, self.intents, ctx.rng, self.config.annotators),
                )
            )


def _simulated_timing(turn: Turn, rng: random.Random) -> Turn:
    """A device's end-to-end latency (network, speech synthesis) instead of this machine's compute time, and no
    measured stage timings in the trace: simulated logs are the same on every run and machine."""
    latency = round(rng.uniform(380.0, 900.0) + 25.0 * len(turn.response_text.split()), 1)
    trace = {
        k: {kk: vv for kk, vv in v.items() if kk != "ms"} if isinstance(v, dict) else v for k, v in turn.trace.items()
    }
    return turn.model_copy(update={"response_latency_ms": latency, "trace": trace})


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method; small means only."""
    limit, k, p = pow(2.718281828459045, -lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _name_words(goal: Goal, naming: dict[str, str]) -> frozenset[str]:
    """Words of the goal's names (devices, areas, towns, tastes): the ASR treats them as entity names."""
    values = [*goal.words.values(), *naming.values()]
    return frozenset(w for v in values for w in v.split() if w not in FUNCTION_WORDS and not w.isdigit())

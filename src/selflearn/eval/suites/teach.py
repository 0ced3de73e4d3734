"""Eval suite ``teach``: is what a user teaches honoured on the very next request, for them and nobody else?

Two parts.

**Probes** (controlled): in every home, every person teaches six things by voice through the runtime (a team, a
cuisine, a music genre, a place, a private device name, a phrase), each chosen to differ from their habits, and
then makes the request it should change. ``applied_next_turn_rate`` is the share of those next requests that
honour the lesson (goal 0.95); ``applied_next_turn_rate_asr_noise`` is the same with lessons and requests passing
through the simulator's recognizer noise. Before and after each lesson, another person of the same home and a person of
another home make the same request; ``leak_rate`` is the share of those that changed to the teacher's value (must
be 0). The baseline is the same probes with no teacher in the runtime.

**Simulated days**: the simulator with and without teaching (same seed, same homes): people teach after failures
(``sim/teaching.py``) and answer "Did I get that right?". ``defect_reduction_with_teaching`` is the relative drop of
the request defect rate (gold failure point not "correct", over request turns only, so lesson and answer turns do
not dilute it) over days 2..N; ``feedback_prompt_rate`` is feedback questions per 100 turns.

With ``--home PATH`` the probes teach only in that home (the generated homes stay as leak checks) and the day
metrics count only its turns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from selflearn import gold as gold_metrics
from selflearn import progress
from selflearn.eval import harness as evaluate
from selflearn.home import Home, Person
from selflearn.runtime.feedback import FEEDBACK_QUESTION, FeedbackPolicy, FeedbackRewriter, PendingRewrites
from selflearn.runtime.runtime import Runtime
from selflearn.schema import Gold, Turn
from selflearn.sim.loop import eval_world
from selflearn.teach.preferences import MemoryPreferences
from selflearn.teach.teacher import Teacher

logger = logging.getLogger(__name__)

QUICK = (4, 5)  # homes, simulated days
FULL = (10, 10)
TEAMS = (("warriors", "Golden State Warriors"), ("celtics", "Boston Celtics"), ("packers", "Green Bay Packers"))
CUISINES = (("ethiopian", "Ethiopian"), ("korean", "Korean"), ("greek", "Greek"))
GENRES = ("reggae", "blues", "folk")
PLACES = (("springfield", "oregon"), ("ashby", "massachusetts"), ("carrollton", "texas"))
T0 = datetime(2026, 3, 2, 19, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Probe:
    kind: str
    """The preference kind probed."""
    lesson: str
    """What the user teaches."""
    request: str
    """What they ask afterwards."""
    value: Callable[[Turn], object]
    """What the request's turn did, in the probe's terms."""
    expected: object
    """What the request's turn should do once taught."""


def _probes(home: Home, person: Person, i: int) -> list[Probe]:
    habits = {k: v.lower() for k, v in person.habits.items()}
    team = next(t for t in TEAMS[i % 3 :] + TEAMS if t[1].lower() != habits.get("team"))
    cuisine = next(c for c in CUISINES[i % 3 :] + CUISINES if c[1].lower() != habits.get("cuisine"))
    genre = next(g for g in GENRES[i % 3 :] + GENRES if g != habits.get("music_genre"))
    town, state = PLACES[i % 3]
    probes = [
        Probe("team", f"I'm a {team[0]} fan", "put the game on", lambda t: t.nlu_slots.get("team"), team[1]),
        Probe(
            "cuisine",
            f"I like {cuisine[0]} food",
            "find a restaurant",
            lambda t: t.nlu_slots.get("cuisine"),
            cuisine[1],
        ),
        Probe(
            "music_genre",
            f"my favourite music is {genre}",
            "play some music",
            lambda t: t.nlu_slots.get("genre"),
            genre,
        ),
        Probe(
            "place",
            f"{town} is the one in {state}",
            f"what's the weather in {town}",
            lambda t: t.nlu_slots.get("city"),
            f"{town.title()}, {state.title()}",
        ),
    ]
    lights = [d for d in home.devices if d.domain in ("light", "switch", "fan")]
    if lights:
        device = lights[i % len(lights)]
        devices: Callable[[Turn], object] = lambda t: tuple(t.resolved_entities.get("devices") or ())  # noqa: E731
        probes += [
            Probe(
                "device_alias", f"the glow thing is the {device.name}", "turn on the glow thing", devices, (device.id,)
            ),
            Probe(
                "phrase",
                f"when I say make it snug I mean turn on the {device.name}",
                "make it snug",
                devices,
                (device.id,),
            ),
        ]
    return probes


def _others(homes: Sequence[Home], home: Home, person: Person) -> list[tuple[Home, Person]]:
    same = [(home, p) for p in home.people if p.id != person.id][:1]
    other = [(h, h.people[0]) for h in homes if h.id != home.id and h.people][:1]
    return same + other


def run_probes(
    homes: Sequence[Home], *, teach: bool, focus: str | None = None, hear: Callable[[str], str] | None = None
) -> dict[str, float]:
    """Teach-then-ask in every home (or only in ``focus``; the others still serve as leak checks): the share
        honoured, and the share of other people's requests that changed to the taught value. ``hear`` passes what
        the teaching person says through a recognizer first (lesson and request alike; the leak checks stay clean, so
    a changed answer can only come from the lesson)."""
    store = MemoryPreferences()
    teacher = Teacher(store) if teach else None
    runtimes = {
        h.id: Runtime(h, preferences=store.preferences if teach else None, teacher=teacher, rewriter=None)
        for h in homes
    }
    clock = [T0]

    def say(home: Home, person: Person, text: str, noisy: bool = False) -> Turn:
        clock[0] += timedelta(minutes=2)
        endpoint = person.endpoints[0] if person.endpoints else home.endpoints[0].id
        heard = hear(text) if hear is not None and noisy else text
        return runtimes[home.id].interpret(heard, user_id=person.id, endpoint_id=endpoint, now=clock[0]).turn

    applied = total = leaks = checks = 0
    by_kind: dict[str, list[int]] = {}
    for home in homes:
        if focus is not None and home.id != focus:
            continue
        for i, person in enumerate(home.people):
            for probe in _probes(home, person, i):
                before = [(h, p, probe.value(say(h, p, probe.request))) for h, p in _others(homes, home, person)]
                say(home, person, probe.lesson, noisy=True)
                ok = probe.value(say(home, person, probe.request, noisy=True)) == probe.expected
                applied += ok
                total += 1
                by_kind.setdefault(probe.kind, [0, 0])
                by_kind[probe.kind][0] += ok
                by_kind[probe.kind][1] += 1
                for h, p, was in before:
                    now = probe.value(say(h, p, probe.request))
                    leaks += now != was and now == probe.expected
                    checks += 1
            store.delete_preferences(person.id)
    out = {"applied_next_turn_rate": applied / max(total, 1), "leak_rate": leaks / max(checks, 1)}
    out |= {f"applied_{k}": a / n for k, (a, n) in sorted(by_kind.items())}
    out |= {"probes": total, "leak_checks": checks}
    return out


def _recognizer(homes: Sequence[Home], seed: int) -> Callable[[str], str]:
    """The simulator's own recognizer (SLURP-calibrated ASR noise at its default rate), seeded."""
    import random

    from selflearn.sim import Simulation

    model = Simulation(homes, seed=seed).asr
    rng = random.Random(f"teach-probes:{seed}")
    return lambda text: model.transcribe(text, rng).text


def _request_defect_rate(turns: Sequence[Turn], gold: Sequence[Gold]) -> float:
    """Defects among request turns: answers to questions and lessons (no true intent, not impossible, correct)
    are the user talking to the teacher, not asking for something."""
    truth = {g.turn_id: g for g in gold}
    requests = [
        g
        for t in turns
        if (g := truth.get(t.turn_id)) is not None
        and not (g.true_intent is None and g.failure_point == "correct" and not g.is_impossible)
    ]
    return gold_metrics.defect_rate(requests)


def run_days(homes: Sequence[Home], *, days: int, seed: int, teach: bool, focus: str | None = None) -> dict[str, float]:
    from selflearn.sim import SimConfig, Simulation
    from selflearn.sim.teaching import TeachingUsers

    config = SimConfig(teach_probability=0.6 if teach else 0.0)
    sim = Simulation(homes, seed=seed, config=config, teaching=TeachingUsers() if teach else None)
    policy = FeedbackPolicy()
    store, pending = MemoryPreferences(), PendingRewrites()
    teacher = Teacher(store, policy=policy, pending=pending) if teach else None
    turns: list[Turn] = []
    gold: list[Gold] = []
    for day in progress.track(range(1, days + 1), "teach: simulating days"):
        logger.info(f"teach: simulated day {day}/{days} ({'with' if teach else 'without'} teaching)")
        log = sim.run_day(
            day,
            rewriter=FeedbackRewriter(pending) if teach else None,
            preferences=store.preferences if teach else None,
            feedback_policy=policy,
            teacher=teacher,
        )
        if day > 1:
            turns += [t for t in log.turns if focus is None or t.home_id == focus]
            gold += log.gold
    asks = sum(t.response_text.endswith(FEEDBACK_QUESTION) for t in turns)
    lessons = sum(t.result_status == "teach" for t in turns)
    return {
        "defect_rate": _request_defect_rate(turns, gold),
        "feedback_prompt_rate": 100.0 * asks / max(len(turns), 1),
        "lessons_per_100_turns": 100.0 * lessons / max(len(turns), 1),
        "turns": len(turns),
    }


@evaluate.suite("teach")
def run(config: evaluate.EvalConfig) -> evaluate.EvalResult:
    n_homes, days = QUICK if config.quick else FULL
    homes, focus = eval_world(n_homes, config.seed, config.home)
    logger.info("teach: probes (teach, then the next request; other people's requests before and after)")
    probes = run_probes(homes, teach=True, focus=focus)
    noisy = run_probes(homes, teach=True, focus=focus, hear=_recognizer(homes, config.seed))
    untaught = run_probes(homes, teach=False, focus=focus)
    without = run_days(homes, days=days, seed=config.seed, teach=False, focus=focus)
    with_teaching = run_days(homes, days=days, seed=config.seed, teach=True, focus=focus)
    base = without["defect_rate"]
    metrics = {
        "applied_next_turn_rate": probes["applied_next_turn_rate"],
        "applied_next_turn_rate_asr_noise": noisy["applied_next_turn_rate"],
        "leak_rate": max(probes["leak_rate"], noisy["leak_rate"]),
        "defect_reduction_with_teaching": (base - with_teaching["defect_rate"]) / base if base else 0.0,
        "feedback_prompt_rate": with_teaching["feedback_prompt_rate"],
        "defect_rate_with_teaching": with_teaching["defect_rate"],
        "lessons_per_100_turns": with_teaching["lessons_per_100_turns"],
        **{k: v for k, v in probes.items() if k.startswith("applied_") and k != "applied_next_turn_rate"},
        "probes": probes["probes"],
        "leak_checks": probes["leak_checks"] + noisy["leak_checks"],
    }
    baseline = {
        "applied_next_turn_rate": untaught["applied_next_turn_rate"],
        "defect_rate_without_teaching": base,
        "feedback_prompt_rate_without_teaching": without["feedback_prompt_rate"],
    }
    n = int(probes["probes"] + probes["leak_checks"] + with_teaching["turns"])
    return evaluate.EvalResult(n=n, metrics=metrics, baseline=baseline)

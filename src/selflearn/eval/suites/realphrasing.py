"""Eval suite ``realphrasing``: real people's smart-home requests (SLURP, nobody here wrote them) through the runtime.

Data: ``data/slurp/realphrasing_eval.jsonl.gz`` (EVALUATION ONLY; built by ``scripts/vendor_realphrasing.py``): the
odd-``slurp_id`` rows of SLURP's dev split (``devel``) and the reference texts (``asr_ref``) and real ASR 1-best
transcripts (``asr_hyp``) of SLURP test recordings. Home-control scenarios (iot, audio volume, weather, datetime)
measure understanding; out-of-scope scenarios (calendar, email, qa, news, social, transport, lists, cooking,
takeaway, recommendation, general) measure false actions. The home is ``willow_house`` (names fit SLURP's
commands) or ``--home``.

Arms, in one run, on the same rows: ``untrained`` (the runtime alone), ``zero_shot`` (retrieval over the home's
canonical commands with the day-0 ranker, nothing learned), ``learned`` (after ``simulate`` + ``learn`` on a
seeded simulation of the home and generated homes: mined rules, what worked in the logs, the ranker ``learn``
published) and ``learned_day0_ranker`` (the same, but the day-0 ranker: the index's share of the change).

``MAPPING`` decides "right intent": the SLURP intent names the runtime intents that do it, and the kind of device
it must act on; a SLURP ``house_place`` that is one of the home's rooms must be the room acted on. A SLURP intent
the runtime has no intent for (``datetime_convert``, ``audio_volume_other``) is left out.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from selflearn import paths, progress
from selflearn.eval import harness as evaluate
from selflearn.home import EVAL_HOMES_DIR, Home, load_home
from selflearn.runtime.runtime import Interpretation, Runtime
from selflearn.schema import Feedback, Turn
from selflearn.text import normalize

if TYPE_CHECKING:
    from selflearn.sim.variation import Phrasing

logger = logging.getLogger(__name__)

DATA = paths.PACKAGE_DATA / "slurp" / "realphrasing_eval.jsonl.gz"
HOME = EVAL_HOMES_DIR / "willow_house.yaml"
SOURCES = ("devel", "asr_ref", "asr_hyp")
ARMS = ("untrained", "zero_shot", "learned", "learned_day0_ranker")


@dataclass(frozen=True)
class Target:
    """What a SLURP intent means in the runtime: intents that do it, and the device kind acted on (if any)."""

    intents: frozenset[str]
    """Runtime intents that count as right."""
    domain: str | None = None
    """Every device acted on must be of this domain (None: no device, or any)."""
    step: str | None = None
    """For a relative volume change: "up" or "down"; None otherwise."""


def _t(*intents: str, domain: str | None = None, step: str | None = None) -> Target:
    return Target(frozenset(intents), domain, step)


MAPPING: dict[str, Target] = {
    "iot_hue_lighton": _t("HassTurnOn", "HassLightSet", domain="light"),
    "iot_hue_lightoff": _t("HassTurnOff", domain="light"),
    "hue_lightoff": _t("HassTurnOff", domain="light"),
    "iot_hue_lightdim": _t("HassLightSet", domain="light"),
    "iot_hue_lightup": _t("HassLightSet", "HassTurnOn", domain="light"),
    "hue_lightup": _t("HassLightSet", "HassTurnOn", domain="light"),
    "iot_hue_lightchange": _t("HassLightSet", domain="light"),
    "iot_wemo_on": _t("HassTurnOn", domain="switch"),
    "iot_wemo_off": _t("HassTurnOff", domain="switch"),
    "wemo_off": _t("HassTurnOff", domain="switch"),
    "iot_coffee": _t("StartProgram", "HassTurnOn", domain="coffee_maker"),
    "iot_cleaning": _t("HassVacuumStart", "HassVacuumCleanArea", "StartProgram", domain="vacuum"),
    "audio_volume_up": _t("HassSetVolumeRelative", "HassSetVolume", domain="media_player", step="up"),
    "audio_volume_down": _t("HassSetVolumeRelative", "HassSetVolume", domain="media_player", step="down"),
    "audio_volume_mute": _t("HassMediaPlayerMute", "HassMediaPause", domain="media_player"),
    "datetime_query": _t("HassGetCurrentTime", "HassGetCurrentDate"),
    "weather_query": _t("HassGetWeather", "WeatherIn"),
}
# SLURP rows whose intent lost its scenario prefix ("query") are mapped by scenario.
BY_SCENARIO = {"weather": MAPPING["weather_query"], "datetime": MAPPING["datetime_query"]}


@dataclass(frozen=True)
class Row:
    """One eval utterance."""

    text: str
    """What was said (lowercase, wake word removed) or what the recognizer heard."""
    source: str
    """Where the row comes from: "devel", "asr_ref" or "asr_hyp"."""
    scope: str
    """Whether it is "home" (home control) or "out" (out of scope)."""
    scenario: str
    """SLURP scenario."""
    intent: str
    """SLURP intent."""
    entities: dict[str, str]
    """SLURP entity type -> words."""


def target(row: Row) -> Target | None:
    return MAPPING.get(row.intent) or (BY_SCENARIO.get(row.scenario) if row.intent == "query" else None)


def load_rows(path: Path = DATA) -> list[Row]:
    """The eval rows; home-control rows without a runtime mapping are left out."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        raw = [json.loads(line) for line in f if line.strip()]
    rows = [Row(r["text"], r["source"], r["scope"], r["scenario"], r["intent"], r["entities"]) for r in raw]
    return [r for r in rows if r.scope == "out" or target(r) is not None]


def eval_texts(path: Path = DATA) -> set[str]:
    """Every eval text, normalised (tests check that none reaches an index)."""
    return {normalize(r.text) for r in load_rows(path)}


def right_intent(row: Row, turn: Turn, home: Home) -> bool:
    """The reading does what the SLURP intent asks (``MAPPING``), on the right kind of device and room."""
    want = target(row)
    if want is None or turn.nlu_intent not in want.intents:
        return False
    devices = [home.device(d) for d in turn.resolved_entities.get("devices", []) if d in {x.id for x in home.devices}]
    if want.domain is not None and devices and any(d.domain != want.domain for d in devices):
        return False
    if want.domain not in (None, "media_player") and not devices:
        return False
    if want.step is not None and turn.nlu_intent == "HassSetVolumeRelative":
        step = str(turn.nlu_slots.get("volume_step", ""))
        up = step == "up" or (step.lstrip("+").isdigit() and not step.startswith("-"))
        if up != (want.step == "up"):
            return False
    place = normalize(row.entities.get("house_place", ""))
    room = next((a for a in home.areas if place and place in {normalize(n) for n in (a.name, *a.aliases)}), None)
    if room is not None:
        acted = {d.area for d in devices} | {turn.resolved_entities.get("area")}
        return room.id in acted
    return True


def device_action(interpretation: Interpretation) -> bool:
    """The turn changed a device (what an out-of-scope request must never do)."""
    return interpretation.status == "success" and bool(interpretation.stages.get("execute", {}).get("changed"))


@dataclass(frozen=True)
class Plan:
    per_source: int | None
    """Rows per (source, scope); None: all."""
    homes: int
    """Generated homes simulated beside the eval home."""
    days: int
    """Simulated days learned from."""
    ranker_homes: int
    """Homes whose mined pairs fit the ranker (each costs an index build)."""
    phrasing: Phrasing = "templates"
    """The simulated people's wordings (``realistic``: SLURP's even rows, varied)."""


# The learned arm's people speak like people (``realistic``: SLURP's even rows, varied), so the index learns the
# repairs of real-like first wordings, not only of ASR-noised canonical commands (docs/rewriting.md).
QUICK = Plan(per_source=40, homes=3, days=3, ranker_homes=1, phrasing="realistic")
FULL = Plan(per_source=None, homes=39, days=6, ranker_homes=3, phrasing="realistic")


def subsample(rows: Sequence[Row], per_source: int, seed: int) -> list[Row]:
    """At most ``per_source`` seeded rows per (source, scope)."""
    rng = random.Random(seed)
    out: list[Row] = []
    for source in SOURCES:
        for scope in ("home", "out"):
            pool = [r for r in rows if r.source == source and r.scope == scope]
            out += rng.sample(pool, min(per_source, len(pool)))
    return out


def simulate(
    homes: Sequence[Home], days: int, seed: int, phrasing: Phrasing = "templates"
) -> tuple[list[Turn], list[Feedback]]:
    """The learned arm's logs: the simulator as it is, days 1..``days`` (the one place the suite calls it)."""
    from selflearn.sim import SimConfig, Simulation

    sim = Simulation(homes, seed=seed, config=SimConfig(phrasing=phrasing))
    turns: list[Turn] = []
    feedback: list[Feedback] = []
    for day in progress.track(range(1, days + 1), "realphrasing: simulating days"):
        logger.info(f"realphrasing: simulating day {day}/{days}")
        log = sim.run_day(day)
        turns += log.turns
        feedback += log.feedback
    return turns, feedback


def learned_runtimes(home: Home, plan: Plan, seed: int, work_dir: Path) -> tuple[Runtime, Runtime, dict[str, Any]]:
    """Simulate the home among generated homes, ``learn`` from the logs, and a runtime on the published set; also
    one whose retrieval uses the learned index with the day-0 ranker (where the gain or loss comes from)."""
    from selflearn.artifacts import ArtifactStore
    from selflearn.learners.learn import LearnConfig, learn
    from selflearn.runtime.retrieval import DAY0, Retrieval, RetrievalConfig
    from selflearn.runtime.rewriter import OnlineRewriter
    from selflearn.sim import generate_homes
    from selflearn.store.logview import LogView

    homes = [home, *(h for h in generate_homes(plan.homes, seed) if h.id != home.id)]
    turns, feedback = simulate(homes, plan.days, seed, plan.phrasing)
    logger.info(f"realphrasing: learning from {len(turns)} simulated turns")
    artifacts = ArtifactStore(work_dir / "artifacts")
    config = LearnConfig(retrieval=RetrievalConfig(ranker_homes=plan.ranker_homes))
    report = learn(LogView.from_records(turns, feedback), artifacts, config=config, homes=homes)
    current = artifacts.current_dir()
    if current is None:
        raise RuntimeError("learn published nothing for the learned arm")
    rewriter = OnlineRewriter.load(current, fallback=Retrieval.load)
    day0 = OnlineRewriter.load(
        current, fallback=lambda d: Retrieval(DAY0, history=Retrieval.load(d).history, artifact_dir=d)
    )
    summary = {"sim_turns": len(turns), **{f"retrieval_{k}": v for k, v in report.parts["retrieval"].items()}}
    return Runtime(home, rewriter=rewriter), Runtime(home, rewriter=day0), summary


def run_arm(runtime: Runtime, rows: Sequence[Row], user: str, endpoint: str, now: datetime) -> list[Interpretation]:
    out = []
    for row in rows:
        out.append(runtime.interpret(row.text, user_id=user, endpoint_id=endpoint, now=now))
        runtime.forget(user)  # every row is a new request, not a follow-up of the last
    return out


def score(rows: Sequence[Row], results: Sequence[Interpretation], home: Home) -> dict[str, float]:
    """Per source, per scenario and over all: intent accuracy, success rate, false action rate, latency."""
    metrics: dict[str, float] = {}
    groups: dict[str, Callable[[Row], bool]] = {"all": lambda r: True}
    groups |= {s: (lambda r, s=s: r.source == s) for s in SOURCES}  # type: ignore[misc]
    groups |= {f"scenario_{c}": (lambda r, c=c: r.scenario == c) for c in sorted({r.scenario for r in rows})}  # type: ignore[misc]
    for name, keep in groups.items():
        home_rows = [(r, i) for r, i in zip(rows, results, strict=True) if keep(r) and r.scope == "home"]
        out_rows = [(r, i) for r, i in zip(rows, results, strict=True) if keep(r) and r.scope == "out"]
        if home_rows:
            right = [right_intent(r, i.turn, home) for r, i in home_rows]
            metrics[f"{name}_intent_accuracy"] = sum(right) / len(right)
            metrics[f"{name}_success_rate"] = sum(
                ok and i.status == "success" for ok, (_, i) in zip(right, home_rows, strict=True)
            ) / len(right)
            metrics[f"{name}_n_home"] = len(home_rows)
        if out_rows:
            metrics[f"{name}_false_action_rate"] = sum(device_action(i) for _, i in out_rows) / len(out_rows)
            metrics[f"{name}_n_out"] = len(out_rows)
    latency = np.array([i.turn.response_latency_ms for i in results])
    metrics["p50_ms"] = float(np.percentile(latency, 50))
    metrics["p99_ms"] = float(np.percentile(latency, 99))
    metrics["retrieved_share"] = sum(i.turn.rewrite_source == "retrieval" for i in results) / len(results)
    return metrics


@evaluate.suite("realphrasing")
def run(config: evaluate.EvalConfig) -> evaluate.EvalResult:
    plan = QUICK if config.quick else FULL
    home = load_home(config.home or HOME)
    rows = load_rows()
    if plan.per_source is not None:
        rows = subsample(rows, plan.per_source, config.seed)
    with tempfile.TemporaryDirectory(dir=config.work_dir) as tmp:  # the learned set, read while the arms run
        return _arms(home, rows, plan, config.seed, Path(tmp))


def _arms(home: Home, rows: Sequence[Row], plan: Plan, seed: int, work_dir: Path) -> evaluate.EvalResult:
    from selflearn.runtime.encoder import shared_encoder
    from selflearn.runtime.retrieval import Retrieval

    endpoint = next((e for e in home.endpoints if e.type == "speaker"), home.endpoints[0])
    user = next((p.id for p in home.people if endpoint.id in p.endpoints), "realphrasing.user")
    now = datetime(2026, 1, 5, 18, 0, tzinfo=UTC)
    runtimes: dict[str, Runtime] = {"untrained": Runtime(home), "zero_shot": Runtime(home, retriever=Retrieval())}
    runtimes["learned"], runtimes["learned_day0_ranker"], learned = learned_runtimes(home, plan, seed, work_dir)
    metrics: dict[str, float] = {}
    warm = Row("frobnicate the blorp", "warm-up", "out", "", "", {})  # fails: every index built, encoder loaded
    for arm in ARMS:  # before any arm is timed, so the indexes' dry runs share one parse memo
        run_arm(runtimes[arm], [warm], user, endpoint.id, now)
    for arm in ARMS:
        logger.info(f"realphrasing: arm {arm}, {len(rows)} utterances")
        runtimes[arm].nlu.clear_memo()  # every arm starts cold: the same texts were parsed and encoded before
        shared_encoder().clear_cache()
        results = run_arm(runtimes[arm], rows, user, endpoint.id, now)
        metrics |= {f"{arm}_{k}": v for k, v in score(rows, results, home).items()}
    metrics |= learned
    baseline = {k: v for k, v in metrics.items() if k.startswith("untrained_")}
    return evaluate.EvalResult(n=len(rows), metrics=metrics, baseline=baseline)

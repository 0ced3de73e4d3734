"""The shadow check: replay the held-out day with a candidate rule set and estimate what it would fix and break.

A batch is published only if this estimate says it would not raise the defect rate. The candidate's online
rewriter runs on every heard text; where it would send the NLU other text than the logs show, the shared runtime
interprets both (dry run). A turn the signals call defective counts as fixed when the new interpretation succeeds,
differs, and is what users who repaired that form reached (``repair_outcomes``); a clean turn counts as broken when
its interpretation changes (``shadow_turns``). Homes without a configuration get a log-only estimate.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from selflearn.controls import rule_id
from selflearn.home import Home
from selflearn.learners.mining import MiningConfig, RewriteTables, chains, linked_requests
from selflearn.progress import track
from selflearn.runtime.form_index import OnlineConfig
from selflearn.runtime.patterns import delexicalise_frame, slot_names
from selflearn.runtime.ranker import Rule
from selflearn.runtime.runtime import Runtime
from selflearn.schema import Turn
from selflearn.text import normalize


@dataclass(frozen=True)
class ShadowReport:
    held_out_since: str
    """ISO timestamp: turns from here on were held out of mining and replayed."""
    turns: int
    """Held-out turns."""
    defects: int
    """Held-out turns the defect signals flag."""
    rewritten: int
    """Held-out turns the candidate (trained without that day) would treat differently than logged."""
    would_fix: float
    """Share of the held-out defects the candidate would fix."""
    would_break: float
    """Share of the held-out non-defects the candidate would break."""
    defect_rate_before: float
    """Held-out defect rate by the defect signals, as logged."""
    defect_rate_after: float
    """Held-out defect rate estimated with the candidate in force."""
    accepted: bool
    """The candidate does not raise the defect rate (within ``shadow_margin``): it may be published."""
    replayed: int = 0
    """Of them, turns replayed through the runtime (candidate's NLU text vs the logged one)."""
    log_only: int = 0
    """Held-out turns of homes without a configuration: log-only estimate (``log_only_estimate``)."""


SHADOW_COLUMNS = {
    "turn_id": pl.String(),
    "defect": pl.Boolean(),
    "replayed": pl.Boolean(),  # the candidate sends the NLU other text than logged: both replayed
    "log_only": pl.Boolean(),  # no home configuration for the turn: the log-only estimate stands in
    "logged_text": pl.String(),
    "candidate_text": pl.String(),
    "before_status": pl.String(),
    "before_intent": pl.String(),
    "before_slots": pl.String(),
    "after_status": pl.String(),
    "after_intent": pl.String(),
    "after_slots": pl.String(),
    "would_fix": pl.Float64(),
    "would_break": pl.Float64(),
    "log_only_fix": pl.Float64(),  # the log-only estimate of every turn (the suite's baseline)
    "log_only_break": pl.Float64(),
    "rule_id": pl.String(),  # the candidate's rule that rewrote a replayed turn (``controls.rule_id``)
}
REPLAYED_SOURCES = ("none", "global", "personal")  # feedback and taught rewrites do not come from the artifact set


def log_only_estimate(tables: RewriteTables, held_out: pl.DataFrame, homes: Sequence[Home] = ()) -> pl.DataFrame:
    """Per held-out turn (``turn_id``, ``log_fix``, ``log_break``), from logs alone: a turn a rule's source form
    matches counts as fixed with the rule's probability when the signals call it a defect, and as broken when it is
    clean and the rule's target intent differs from the logged one. Pattern rules are matched on the forms
    delexicalised with their homes' names."""
    g = tables.global_table.select(
        pl.col("source").alias("form"), g_target="target", g_p="probability", g_intent="target_intent"
    ).unique("form", keep="first", maintain_order=True)
    p = tables.personal_table.select(
        "user_id", pl.col("source").alias("form"), p_target="target", p_p="probability", p_intent="target_intent"
    ).unique(["user_id", "form"], keep="first", maintain_order=True)
    t = tables.pattern_table.select(
        pl.col("source").alias("pattern"), t_target="target", t_p="probability", t_intent="target_intent"
    ).unique("pattern", keep="first", maintain_order=True)
    frame = held_out.select("turn_id", "user_id", "home_id", "form", "defect", "nlu_intent")
    patterns = delexicalise_frame(held_out, homes)["form"] if homes else frame["form"]
    hit = (
        frame.with_columns(pattern=patterns)
        .join(g, on="form", how="left", maintain_order="left")
        .join(p, on=["user_id", "form"], how="left", maintain_order="left")
        .join(t, on="pattern", how="left", maintain_order="left")
        .with_columns(
            target=pl.coalesce("p_target", "g_target", "t_target"),
            prob=pl.coalesce("p_p", "g_p", "t_p"),
            target_intent=pl.coalesce("p_intent", "g_intent", "t_intent"),
        )
    )
    fires = pl.col("target").is_not_null()
    return hit.select(
        "turn_id",
        log_fix=pl.when(fires & pl.col("defect")).then(pl.col("prob")).otherwise(0.0),
        log_break=pl.when(fires & ~pl.col("defect") & pl.col("target_intent").ne_missing(pl.col("nlu_intent")))
        .then(1.0)
        .otherwise(0.0),
    )


def repair_outcomes(
    scored: pl.DataFrame,
    homes: Sequence[Home] = (),
    is_rephrase: pl.Series | None = None,
    config: MiningConfig | None = None,
) -> pl.DataFrame:
    """(``form``, ``intent``, ``slot_names``): what users reached when they repaired a failing form (a rephrase
    chain ending in a clean success, linked as mining links them: its intent and sorted slot names, values left out
    so a repair transfers across rooms and homes), for the lexical forms and, with ``homes``, their patterns. The
    shadow's evidence for what a failing form wants when nobody repaired it on the held-out day: a rule that
    rewrites it into some other request that happens to succeed ("coffee please" -> the weather, the living room
    lights -> the TV) is not a fix."""
    scored, links = linked_requests(scored, is_rephrase, config or MiningConfig())
    frames = [scored, delexicalise_frame(scored, homes)] if homes and scored.height else [scored]
    intent, slots = (pl.col("target").str.splitn("|", 2).struct.field(f) for f in ("field_0", "field_1"))
    names = slot_names(slots)
    outcomes = [
        chains(frame, links).select("form", intent=intent.replace("", None), slot_names=names if i == 0 else slots)
        for i, frame in enumerate(frames)
    ]
    return pl.concat(outcomes).drop_nulls().unique()


def shadow_turns(
    tables: RewriteTables,
    held_out: pl.DataFrame,
    homes: Sequence[Home] = (),
    online: OnlineConfig | None = None,
    repaired: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Per held-out turn (``SHADOW_COLUMNS``): what the candidate tables would change, from logs and a replay.

    The candidate's ``OnlineRewriter`` (the runtime's code, loaded from the tables as saved) runs on each turn's
    heard text. Where it sends the NLU other text than the logs show went there, both texts are replayed through
    a private ``Runtime`` of the turn's home (dry run: its own copy of the device states, set to the logged
    snapshot). A turn the signals call a defect is *fixed* when the candidate's interpretation succeeds, differs
    from the logged one and from the replayed one, and is what was wanted: if the user rephrased it into a clean
    success next, what that repair got; otherwise an intent and slot names that users who repaired the rule's
    source form (or the heard form) reached, per ``repaired`` (``repair_outcomes`` of all logs; default: of
    ``held_out``). A clean turn
    is *broken* when its interpretation (status, intent, slots, resolved devices) changes. Turns of a home not in
    ``homes`` get the log-only estimate.
    """
    log_only = log_only_estimate(tables, held_out, homes)
    known = {h.id: h for h in homes}
    rows = held_out.select(
        "turn_id", "user_id", "home_id", "device_id", "ts", "asr_text", "rewritten_text", "rewrite_source",
        "nlu_intent", "nlu_slots", "resolved_entities", "result_status", "device_state_snapshot", "meta", "defect",
        "rephrased", "next_turn_id", "form",
    ).to_dicts()  # fmt: skip
    repairs = {  # clean successes: what a user who rephrased right before them wanted
        r["turn_id"]: interpretation(r["result_status"], r["nlu_intent"], r["nlu_slots"], r["resolved_entities"])
        for r in rows
        if r["result_status"] == "success" and not r["defect"]
    }
    for r in rows:
        r["repair"] = repairs.get(r["next_turn_id"]) if r["rephrased"] else None
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        replay = None
        if any(r["home_id"] in known for r in rows):
            evidence = repair_outcomes(held_out, homes) if repaired is None else repaired
            replay = _Replay(tables, Path(scratch), known, online, evidence)
        pairs = zip(rows, log_only.select("log_fix", "log_break").iter_rows(), strict=True)
        for row, (fix, brk) in track(pairs, "shadow check: replaying held-out turns", total=len(rows)):
            entry = {
                "turn_id": row["turn_id"], "defect": row["defect"], "replayed": False, "log_only": False,
                "log_only_fix": fix, "log_only_break": brk, "would_fix": 0.0, "would_break": 0.0,
            }  # fmt: skip
            if replay is None or not replay.knows(row):
                entry |= {"log_only": True, "would_fix": fix, "would_break": brk}
            elif not row["meta"] and row["rewrite_source"] in REPLAYED_SOURCES:
                entry |= replay.compare(row)
            out.append(entry)
    return pl.DataFrame(out, schema=SHADOW_COLUMNS)


def shadow_evaluate(
    tables: RewriteTables,
    held_out: pl.DataFrame,
    since: str,
    homes: Sequence[Home] = (),
    online: OnlineConfig | None = None,
    margin: int = 0,
) -> ShadowReport:
    """The held-out day's defect rate (by the signals) as logged and as estimated with ``tables`` in force."""
    return summarise_shadow(shadow_turns(tables, held_out, homes, online), since, margin)


def shadow_accepts(would_fix: float, would_break: float, margin: int) -> bool:
    """Accept unless the estimated breaks outnumber the fixes by more than ``margin`` turns: the candidate is mined
    without the held-out day, so a rule the set in service learned from that day shows up as a break or two that the
    published set (mined on every day) does not have."""
    return would_break - would_fix <= margin


def summarise_shadow(turns: pl.DataFrame, since: str, margin: int = 0) -> ShadowReport:
    """Accept iff the estimated defect rate does not rise by more than ``margin`` turns (``shadow_accepts``)."""
    n = max(turns.height, 1)
    defects = int(turns["defect"].sum())
    fix, brk = float(turns["would_fix"].sum()), float(turns["would_break"].sum())
    before, after = defects / n, (defects - fix + brk) / n
    changed = int(
        (turns["replayed"] | (turns["log_only"] & (turns["log_only_fix"] + turns["log_only_break"] > 0))).sum()
    )
    return ShadowReport(
        held_out_since=since,
        turns=turns.height,
        defects=defects,
        rewritten=changed,
        would_fix=fix,
        would_break=brk,
        defect_rate_before=before,
        defect_rate_after=after,
        accepted=shadow_accepts(fix, brk, margin),
        replayed=int(turns["replayed"].sum()),
        log_only=int(turns["log_only"].sum()),
    )


def interpretation(status: str | None, intent: str | None, slots: Any, entities: Any) -> tuple[Any, ...]:
    """What a turn did, for comparing a replay with the log: status, intent, slots, resolved devices. A device
    name or area counts by the devices it resolved to ("kitchen lite" and "kitchen light" are one lamp)."""
    slots = json.loads(slots) if isinstance(slots, str) else slots or {}
    entities = json.loads(entities) if isinstance(entities, str) else entities or {}
    devices = tuple(sorted(entities.get("devices") or ()))
    if devices:
        slots = {k: v for k, v in slots.items() if k not in ("name", "area")}
    return (status, intent, json.dumps(slots, sort_keys=True, default=str), devices)


class _Replay:
    """The candidate rewriter (loaded from ``tables`` saved under ``scratch``, personal tables on a user's first
    turn, as online), a dry-run runtime per home, built on its first replay, and the repaired forms' outcomes
    (``repair_outcomes``: form -> {(intent, slot names)}), for ``shadow_turns``."""

    def __init__(
        self,
        tables: RewriteTables,
        scratch: Path,
        homes: dict[str, Home],
        online: OnlineConfig | None,
        repaired: pl.DataFrame,
    ) -> None:
        from selflearn.runtime.rewriter import OnlineRewriter

        self.homes = homes
        wanted: dict[str, set[tuple[str, str]]] = {}
        for form, intent, names in repaired.select("form", "intent", "slot_names").iter_rows():
            wanted.setdefault(form, set()).add((intent, names))
        self.wanted = wanted
        self.lexical = {(normalize(s), normalize(t)) for s, t in tables.global_table.select("source", "target").rows()}
        self.runtimes: dict[str, Runtime] = {}
        tables.save(scratch)
        self.rewriter = OnlineRewriter.load(scratch, config=online)

    def knows(self, row: dict[str, Any]) -> bool:
        home = self.homes.get(row["home_id"])
        return home is not None and any(e.id == row["device_id"] for e in home.endpoints)

    def compare(self, row: dict[str, Any]) -> dict[str, Any]:
        home = self.homes[row["home_id"]]
        heard = row["asr_text"] or ""
        logged = row["rewritten_text"] if row["rewrite_source"] != "none" and row["rewritten_text"] else heard
        best = self.rewriter.best(heard, user_id=row["user_id"], home=home)  # what ``rewrite`` would send
        candidate = best.text if best is not None and normalize(best.text) != normalize(heard) else heard
        if normalize(candidate) == normalize(logged):
            return {}
        before, after = self._interpret(logged, row), self._interpret(candidate, row)
        was = interpretation(row["result_status"], row["nlu_intent"], row["nlu_slots"], row["resolved_entities"])
        b = interpretation(before.result_status, before.nlu_intent, before.nlu_slots, before.resolved_entities)
        a = interpretation(after.result_status, after.nlu_intent, after.nlu_slots, after.resolved_entities)
        fixed = row["defect"] and after.result_status == "success" and a != b and a != was
        if fixed and row["repair"] is not None:  # the user's own repair says what was wanted
            fixed = row["repair"] == a
        elif fixed and best is not None:  # else what others who repaired the rule's source (or this form) reached
            wanted = self.wanted.get(best.rule.source, set()) | self.wanted.get(row["form"], set())
            fixed = (after.nlu_intent, ",".join(sorted(after.nlu_slots))) in wanted
        broken = not row["defect"] and a != b
        rule = None if candidate == heard or best is None else self.rule_id(best.rule, row["user_id"])
        return {
            "rule_id": rule,
            "replayed": True, "logged_text": logged, "candidate_text": candidate,
            "before_status": before.result_status, "before_intent": before.nlu_intent,
            "before_slots": json.dumps(before.nlu_slots, sort_keys=True, default=str),
            "after_status": after.result_status, "after_intent": after.nlu_intent,
            "after_slots": json.dumps(after.nlu_slots, sort_keys=True, default=str),
            "would_fix": float(fixed), "would_break": float(broken),
        }  # fmt: skip

    def rule_id(self, rule: Rule, user_id: str) -> str:
        """The fired rule's ``controls.rule_id`` (a global-layer rule not in the global table is a pattern rule)."""
        lexical = "global" if (rule.source, rule.target) in self.lexical else "pattern"
        kind = "personal" if rule.layer == "personal" else lexical
        return rule_id(kind, user_id if kind == "personal" else None, rule.source, rule.target)

    def _interpret(self, text: str, row: dict[str, Any]) -> Turn:
        home = self.homes[row["home_id"]]
        runtime = self.runtimes.get(home.id)
        if runtime is None:
            runtime = self.runtimes[home.id] = Runtime(home)
        runtime.state.clear()
        runtime.state.update({d.id: dict(d.state) for d in home.devices})
        snapshot = json.loads(row["device_state_snapshot"] or "{}")
        runtime.state.update({d: dict(s) for d, s in snapshot.items() if d in runtime.state})
        runtime.forget(row["user_id"])
        return runtime.interpret(text, user_id=row["user_id"], endpoint_id=row["device_id"], now=row["ts"]).turn

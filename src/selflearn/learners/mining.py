"""Offline rewrite mining: from users' rephrase chains to a guarded table of "say this instead" rewrites.

A user whose request fails and who rephrases until it works has shown, without a label, what the failing form
should have been. Over all users, utterance forms are the states of an absorbing Markov chain: a failing turn's
form is transient, a turn that succeeded is absorbed in its form, a failure nobody repaired is absorbed in "gave
up". The most probable success state reachable from a failing form is its rewrite candidate (fundamental matrix
N = (I - Q)^-1 applied to R, sparse LU). Guardrails keep the global table safe: minimum support, k distinct users
(k-anonymity) from several homes (user ids are whatever a home's logs say), a mostly-failing source form, no change
of domain without strong evidence (a sensitive target of a form nobody understood counts as one), and rule hygiene
(``rewrite.hygiene``: no change of the device kind or area named, no bare fragment; every layer). A per-user layer
keeps each user's own repeated repairs. Aggregation is Polars (no Python loops over rows); the solve is scipy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
from scipy import sparse
from scipy.sparse.linalg import splu

from selflearn import ids
from selflearn.home import Home
from selflearn.learners.base import Artifact, Logs
from selflearn.learners.hygiene import Hygiene, violations
from selflearn.learners.signals import NO_RESULT_STATUSES, SignalConfig, evidence, text_similarity
from selflearn.runtime.patterns import PLACEHOLDER, delexicalise_frame, own_device_word
from selflearn.runtime.rewrites import REWRITE_SCHEMA, empty_table, read_global, read_patterns, write_tables
from selflearn.text import with_normalized

SOLVE_BATCH = 256  # absorbing states solved per LU back-substitution (bounds memory to T x 256 floats)


@dataclass(frozen=True)
class MiningConfig:
    pair_window_s: float = 30.0
    """Candidate rephrase pair: the same user's next turn within this many seconds."""
    similarity_min: float = 0.5
    """Baseline rephrase detector: rapidfuzz token_set_ratio / 100."""
    min_support: int = 5
    """Global layer: chains from source that ended in target."""
    min_users: int = 5
    """Global layer: k-anonymity, distinct users behind those chains ..."""
    min_homes: int = 3
    """... from this many distinct homes (user ids are whatever a home's logs say they are)."""
    min_probability: float = 0.3
    """Absorption probability of the target from the source."""
    min_source_defect_rate: float = 0.5
    """Only rewrite forms that usually fail (across all users)."""
    personal_min_support: int = 2
    """Personal layer: the user's own repairs source -> target."""
    domain_change_users: int = 15
    """Distinct users a global rule needs to cross domains ..."""
    domain_change_probability: float = 0.8
    """Absorption probability needed to cross domains (global)."""
    domain_change_homes: int = 5
    """... from this many homes; also needed by a sensitive target of an unread form."""
    personal_domain_change_support: int = 4
    """Support a personal rule needs to cross domains."""
    sensitive_guard: bool = True
    """Off: a sensitive target of an unread form needs no more homes (the old guards, for the poison suite)."""
    hygiene: bool = True
    """Drop rules that change the device kind or area named, or whose source is a fragment."""
    signals: SignalConfig = field(default_factory=SignalConfig)
    """Defect-signal settings used to find the failing forms."""


@dataclass
class RewriteTables(Artifact):
    """The miner's artifact: the global and the personal rewrite tables (``REWRITE_SCHEMA`` columns)."""

    global_table: pl.DataFrame = field(default_factory=empty_table)
    """Rules for everyone: lexical source form -> target."""
    personal_table: pl.DataFrame = field(default_factory=empty_table)
    """Each user's own rules (``user_id`` column), saved under ``personal/<user>/``."""
    pattern_table: pl.DataFrame = field(default_factory=empty_table)
    """Global rules over delexicalised forms (names of a home's entities as placeholders)."""

    marker: ClassVar[Path] = Path("rewrites") / "global.parquet"
    """The file whose presence in an artifact set means this artifact is there (``find``)."""

    def save(self, root: Path) -> None:
        write_tables(root, self.global_table, self.personal_table, self.pattern_table)

    def apply(self, logs: Logs) -> pl.DataFrame:
        """Per turn, the rule the tables hold for its heard form (``target``, ``layer``: personal, global or
        pattern, in the runtime's order, ``probability``; nulls where none); patterns match the form delexicalised
        with the homes of ``logs`` when it is ``Evidence`` with homes."""
        ev = evidence(logs)
        frame = ev.scored.select("turn_id", "user_id", "form")
        patterns = delexicalise_frame(ev.scored, ev.homes)["form"] if ev.homes else frame["form"]
        layers = {"personal": (self.personal_table, ["user_id", "form"]), "global": (self.global_table, ["form"]),
                  "pattern": (self.pattern_table, ["pattern"])}  # fmt: skip
        hit = frame.with_columns(pattern=patterns)
        for layer, (table, keys) in layers.items():
            rules = table.rename({"source": keys[-1]}).select(
                *keys, **{f"{layer}_target": "target", f"{layer}_p": "probability"}
            )
            hit = hit.join(rules.unique(keys, keep="first", maintain_order=True), on=keys, how="left",
                           maintain_order="left")  # fmt: skip
        return hit.select(
            "turn_id",
            target=pl.coalesce(*(f"{layer}_target" for layer in layers)),
            layer=pl.coalesce(*(pl.when(pl.col(f"{lay}_target").is_not_null()).then(pl.lit(lay)) for lay in layers)),
            probability=pl.coalesce(*(f"{layer}_p" for layer in layers)),
        )

    def summary(self) -> dict[str, Any]:
        return {
            "global": self.global_table.height,
            "personal": self.personal_table.height,
            "patterns": self.pattern_table.height,
        }

    @classmethod
    def load(cls, root: Path) -> RewriteTables:
        personal_files = sorted((root / "personal").glob("*/rewrites.parquet"))
        personal = pl.concat([pl.read_parquet(p) for p in personal_files]) if personal_files else empty_table()
        return cls(read_global(root), personal.cast(REWRITE_SCHEMA), read_patterns(root))


INTENT_FAMILIES = (
    ("device", "Turn|Light|Fan|Cover|Valve|Lock|Vacuum|Mower|Toggle"),
    ("climate", "Climate|Temperature|Thermostat|Heat"),
    ("media", "Media|Volume|Music|Play|Radio|Podcast"),
    ("timer", "Timer|Alarm"),
    ("list", "List"),
    ("weather", "Weather"),
    ("clock", "Time|Date"),
)  # (domain, intent-name pattern), first match wins; both engines read it


def intent_domain(intent: pl.Expr) -> pl.Expr:
    """Coarse domain of an NLU intent name (HassTurnOn -> device, HassMediaPause -> media); rewrites that cross
    domains change what the assistant does, not just how it understood, so they need stronger evidence."""
    expr: pl.Expr = intent.str.to_lowercase()
    for name, pattern in reversed(INTENT_FAMILIES):
        expr = pl.when(intent.str.contains(pattern)).then(pl.lit(name)).otherwise(expr)
    return expr


def baseline_rephrase(scored: pl.DataFrame, config: MiningConfig) -> pl.Series:
    """Rule baseline, per turn: its next turn (same user, within the window) is a rephrase of it: similar text
    (rapidfuzz), or any text after a turn that got no result (the signals' own rephrase rule). Whoever hears "sorry,
    I didn't get that" and says something else seconds later is trying again, often in other words ("do i need an
    umbrella" -> "what is the weather"); a follow-up that was a new request is one user's noise, which the global
    layer's support, k users and probability floors keep out."""
    return scored.select(
        is_rephrase=(
            (pl.col("gap_s") <= config.pair_window_s)
            & ((pl.col("similarity") >= config.similarity_min) | pl.col("result_status").is_in(NO_RESULT_STATUSES))
            & ~pl.col("next_status").is_in(("feedback", "teach"))
        ).fill_null(False)
    )["is_rephrase"]


def linked_requests(
    scored: pl.DataFrame, is_rephrase: pl.Series | None, config: MiningConfig
) -> tuple[pl.DataFrame, pl.Series]:
    """The turns that are steps of a chain, with their rephrase links (``baseline_rephrase`` unless given). A "no,
    that's wrong" or a teaching turn between a failure and its repair is talk about the request, not a step of the
    chain: without it the failure links to the repair (the signals skip it too)."""
    links = baseline_rephrase(scored, config) if is_rephrase is None else is_rephrase
    if "meta" not in scored.columns:
        return scored, links
    requests = ~scored["meta"]
    return scored.filter(requests), links.filter(requests)


def chains(scored: pl.DataFrame, is_rephrase: pl.Series) -> pl.DataFrame:
    """Per defective turn: its transition (next failing form, success outcome, or gave up) and its chain's outcome.

    ``scored`` comes from ``DefectSignals.score_frame`` (sorted by user and time); a defective turn links to the
    user's next turn when that is a rephrase. Links split the turns into chains; a chain ending in a success turn
    gives every failing form in it that success as an eventual ``target``. A success state is the NLU outcome
    (intent + slots), not its wording, so users who repair the same failure with different words add up;
    ``target_form`` keeps the words the user actually used.
    """
    df = with_normalized(
        scored.with_columns(
            is_rephrase=is_rephrase,
            ok=(pl.col("result_status") == "success") & ~pl.col("defect"),
            nlu_text=pl.coalesce(pl.col("rewritten_text"), pl.col("asr_text")),
        ),
        "nlu_text",
        "effective_form",
    ).with_columns(
        link=pl.col("defect") & pl.col("is_rephrase") & pl.col("next_turn_id").is_not_null(),
        outcome=pl.concat_str([pl.col("nlu_intent").fill_null(""), pl.lit("|"), pl.col("nlu_slots")]),
    )
    linked_in = (pl.col("link").shift(1) & (pl.col("user_id").shift(1) == pl.col("user_id"))).fill_null(False)
    df = df.with_columns(chain=(~linked_in).cum_sum())
    df = df.with_columns(
        next_ok=pl.col("ok").shift(-1),
        next_outcome=pl.col("outcome").shift(-1),
        end_ok=pl.col("ok").last().over("chain"),
        end_outcome=pl.col("outcome").last().over("chain"),
        end_form=pl.col("effective_form").last().over("chain"),
    )
    return df.filter(pl.col("defect")).select(
        "turn_id",
        "user_id",
        "home_id",
        "ts",
        "form",
        "nlu_intent",
        "nlu_slots",
        "chain",
        "link",
        to_kind=pl.when(~pl.col("link"))
        .then(pl.lit("gave_up"))
        .when(pl.col("next_ok"))
        .then(pl.lit("ok"))
        .otherwise(pl.lit("fail")),
        to_form=pl.when(~pl.col("link"))
        .then(pl.lit(None, dtype=pl.String))
        .when(pl.col("next_ok"))
        .then(pl.col("next_outcome"))
        .otherwise(pl.col("next_form")),
        target=pl.when(pl.col("end_ok")).then(pl.col("end_outcome")),
        target_form=pl.when(pl.col("end_ok")).then(pl.col("end_form")),
    )


def absorb(transitions: pl.DataFrame) -> pl.DataFrame:
    """Absorbing-chain solve: per failing form, the most probable success form and its absorption probability.

    ``transitions`` has one row per defective turn (``form``, ``to_kind``, ``to_form``). Q (failing -> failing)
    and R (failing -> success) are row-normalised counts; B = (I - Q)^-1 R via one sparse LU, solved in column
    batches so memory stays bounded; "gave up" is the implicit remainder of each row.
    """
    counts = transitions.group_by("form", "to_kind", "to_form").len()
    states = transitions.select(pl.col("form").unique().sort()).with_row_index("i")
    totals = transitions.group_by("form").len("total").join(states, on="form")
    n_t = states.height
    if n_t == 0:
        return pl.DataFrame(schema={"form": pl.String, "target": pl.String, "probability": pl.Float64})
    rows = counts.join(totals, on="form").with_columns(p=pl.col("len") / pl.col("total"))
    q = rows.filter(pl.col("to_kind") == "fail").join(states.rename({"form": "to_form", "i": "j"}), on="to_form")
    r = rows.filter(pl.col("to_kind") == "ok")
    targets = r.select(pl.col("to_form").unique().sort()).with_row_index("j")
    r = r.join(targets, on="to_form")
    n_a = targets.height
    if n_a == 0:
        return pl.DataFrame(schema={"form": pl.String, "target": pl.String, "probability": pl.Float64})
    q_m = sparse.csr_matrix((q["p"].to_numpy(), (q["i"].to_numpy(), q["j"].to_numpy())), shape=(n_t, n_t))
    r_m = sparse.csc_matrix((r["p"].to_numpy(), (r["i"].to_numpy(), r["j"].to_numpy())), shape=(n_t, n_a))
    # A tiny give-up leak keeps I - Q invertible when failing forms only lead to each other (a user repeating a
    # form that never works): such forms are then absorbed nowhere, instead of a singular factorisation.
    lu = splu(sparse.csc_matrix(sparse.identity(n_t) - (1.0 - 1e-9) * q_m))
    best_p = np.zeros(n_t)
    best_j = np.zeros(n_t, dtype=np.int64)
    for lo in range(0, n_a, SOLVE_BATCH):
        block = lu.solve(r_m[:, lo : lo + SOLVE_BATCH].toarray())
        j = block.argmax(axis=1)
        p = block[np.arange(n_t), j]
        better = p > best_p
        best_p[better] = p[better]
        best_j[better] = j[better] + lo
    return pl.DataFrame(
        {
            "form": states["form"],
            "target": targets["to_form"].gather(best_j),
            "probability": np.clip(best_p, 0.0, 1.0),
        }
    ).filter(pl.col("probability") > 0)


def _mode(column: str) -> pl.Expr:
    return pl.col(column).fill_null("").mode().sort().first().replace("", None)


class RewriteMiner:
    """``RewriteMiner(config).fit(logs) -> RewriteTables``; ``fit_frame`` for already-scored turns."""

    name: ClassVar[str] = "mining"
    """The learner's name in ``LearnConfig.learners`` and in the learn report."""

    def __init__(self, config: MiningConfig | None = None):
        self.config = config or MiningConfig()

    def fit(self, logs: Logs, is_rephrase: pl.Series | None = None, *, homes: Sequence[Home] = ()) -> RewriteTables:
        """Mine ``logs`` (``Evidence``: its scored turns, links and homes unless given here)."""
        ev = evidence(logs, self.config.signals, homes)
        links = is_rephrase if is_rephrase is not None else ev.links
        return self.fit_frame(ev.scored, links, homes=homes or ev.homes)

    def fit_frame(
        self, scored: pl.DataFrame, is_rephrase: pl.Series | None = None, *, homes: Sequence[Home] = ()
    ) -> RewriteTables:
        """Lexical global and personal tables from ``scored``; with ``homes`` (their configurations name the
        entities) also the pattern table: the same mining and guardrails over delexicalised forms."""
        scored, links = linked_requests(scored, is_rephrase, self.config)
        hygiene = Hygiene.for_homes(homes)
        tables = self._fit_forms(scored, links, hygiene)
        if homes and scored.height:
            tables.pattern_table = fillable(
                self._fit_forms(delexicalise_frame(scored, homes), links, hygiene).global_table
            )
        return tables

    def _fit_forms(self, scored: pl.DataFrame, links: pl.Series, hygiene: Hygiene) -> RewriteTables:
        c = self.config
        ch = chains(scored, links)
        solved = absorb(ch)
        if solved.height == 0:
            return RewriteTables()
        form_stats = scored.group_by("form").agg(defect_rate=pl.col("defect").mean())
        source_intents = ch.group_by("form").agg(source_intent=_mode("nlu_intent"), source_slots=_mode("nlu_slots"))
        evidence = ch.filter(pl.col("target").is_not_null())
        pairs = evidence.group_by("form", "target").agg(
            support=pl.len().cast(pl.Int64),
            distinct_users=pl.col("user_id").n_unique().cast(pl.Int64),
            distinct_homes=pl.col("home_id").n_unique().cast(pl.Int64),
            target_form=_mode("target_form"),
        )
        described = _describe(
            solved.join(pairs, on=["form", "target"], how="inner").join(form_stats, on="form", how="left"),
            source_intents,
        )
        candidates = described.filter(
            (pl.col("support") >= c.min_support)
            & (pl.col("distinct_users") >= c.min_users)
            & (pl.col("distinct_homes") >= c.min_homes)
            & (pl.col("probability") >= c.min_probability)
            & (pl.col("defect_rate") >= c.min_source_defect_rate)
        )
        global_table = self.guarded(candidates, hygiene)
        return RewriteTables(
            global_rows(global_table), personal_rows(self._personal(ch, source_intents, global_table, hygiene))
        )

    def guarded(self, candidates: pl.DataFrame, hygiene: Hygiene) -> pl.DataFrame:
        """The global ``candidates`` (past the support, k-anonymity and probability floors) that also pass the domain
        change, sensitive-target and hygiene guards (per-rule string work; the Spark engine calls it too)."""
        c = self.config
        wide = pl.col("distinct_homes") >= c.domain_change_homes
        strong = (
            (pl.col("distinct_users") >= c.domain_change_users)
            & (pl.col("probability") >= c.domain_change_probability)
            & wide
        )
        # A form no NLU read says nothing about its domain, so "no domain change" proves nothing: a sensitive target
        # (a lock, alarm, cover, the heating) of such a form needs the repairs of more homes than ``min_homes``.
        sensitive = [
            c.sensitive_guard and hygiene.sensitive(t, i, s)
            for t, i, s in candidates.select("target", "target_intent", "target_slots").iter_rows()
        ]
        unread_sensitive = pl.Series(sensitive, dtype=pl.Boolean) & pl.col("source_intent").is_null()
        kept = candidates.filter((~pl.col("domain_change") | strong) & (~unread_sensitive | wide))
        return self._hygienic(kept, hygiene)

    def _hygienic(self, rules: pl.DataFrame, hygiene: Hygiene) -> pl.DataFrame:
        """``rules`` without those that break hygiene (``rewrite.hygiene``), unless ``config.hygiene`` is off."""
        if not self.config.hygiene or rules.height == 0:
            return rules
        return rules.filter(pl.Series(violations(hygiene, rules.iter_rows(named=True))).is_null())

    def _personal(
        self, ch: pl.DataFrame, source_intents: pl.DataFrame, global_table: pl.DataFrame, hygiene: Hygiene
    ) -> pl.DataFrame:
        """Each user's own repairs: source -> outcome seen at least ``personal_min_support`` times for that user.

        After "sorry, I didn't get that" the next words link however different they are, so a person who moves on
        to their routine looks like a repair ("coffee please" -> "what is the weather", six times for one person;
        "get the oven hot to 190" -> "set a timer for 15 minutes"). Such a weak link (a source nobody's NLU
        understood, a follow-up sharing few of its words) yields to the global rule for the same source when that
        one reaches another intent: the population's repair ("make coffee") is the better evidence."""
        tries = ch.group_by("user_id", "form").len("tries")
        own = (
            ch.filter(pl.col("target").is_not_null())
            .group_by("user_id", "form", "target")
            .agg(support=pl.len().cast(pl.Int64), target_form=_mode("target_form"))
            .join(tries, on=["user_id", "form"])
            .with_columns(probability=pl.col("support") / pl.col("tries"), distinct_users=pl.lit(1, dtype=pl.Int64))
        )
        best = _describe(own, source_intents).sort(["support", "target"], descending=[True, False])
        return self.personal_kept(
            best.unique(["user_id", "source"], keep="first", maintain_order=True), global_table, hygiene
        )

    def personal_kept(self, best: pl.DataFrame, global_table: pl.DataFrame, hygiene: Hygiene) -> pl.DataFrame:
        """Of each user's best repair per source (``best``), those past the personal floors, the weak-link overrule
        and hygiene (per-rule work; the Spark engine calls it too)."""
        c = self.config
        similarity = text_similarity(best["source"], best["target"])
        best = best.with_columns(weak_link=pl.col("source_intent").is_null() & (similarity < c.similarity_min)).join(
            global_table.select("source", global_intent="target_intent"), on="source", how="left"
        )
        overruled = pl.col("weak_link") & (pl.col("global_intent") != pl.col("target_intent")).fill_null(False)
        kept = best.filter(
            (pl.col("support") >= c.personal_min_support)
            & (pl.col("probability") >= c.min_probability)
            & (~pl.col("domain_change") | (pl.col("support") >= c.personal_domain_change_support))
            & ~overruled
        )
        return (
            self._hygienic(kept, hygiene)
            .select(*_COLUMNS, layer=pl.lit("personal"), user_id="user_id")
            .sort("user_id", "source")
        )


_COLUMNS = ("source", "target", "probability", "support", "distinct_users", "source_intent", "target_intent")


def global_rows(global_table: pl.DataFrame) -> pl.DataFrame:
    """Guarded global rules as published rows (``REWRITE_SCHEMA``), sorted by source."""
    rows = global_table.select(*_COLUMNS, layer=pl.lit("global"), user_id=pl.lit(None, dtype=pl.String))
    return rows.sort("source").cast(REWRITE_SCHEMA)


def personal_rows(personal: pl.DataFrame) -> pl.DataFrame:
    """Personal rules as published rows; a user id that cannot name a folder (logs stored before ids were checked)
    gets none."""
    named = pl.col("user_id").str.contains(ids.PATTERN) & (pl.col("user_id").str.len_chars() <= ids.MAX_LENGTH)
    return personal.filter(named).cast(REWRITE_SCHEMA)


def fillable(patterns: pl.DataFrame) -> pl.DataFrame:
    """Pattern rules whose target uses only placeholders its source fills, or that swap a person's own word for a
    device for that device (filled online only from a home with one device of that domain)."""
    said, sent = (pl.col(c).str.extract_all(PLACEHOLDER.pattern) for c in ("source", "target"))
    own_word = [own_device_word(s, t) is not None for s, t in patterns.select("source", "target").iter_rows()]
    return patterns.filter((sent.list.set_difference(said).list.len() == 0) | pl.Series(own_word, dtype=pl.Boolean))


def _describe(rows: pl.DataFrame, source_intents: pl.DataFrame) -> pl.DataFrame:
    """Outcome keys -> rewrite rows: target text (the users' repair wording), intents, domain change; drops no-ops."""
    return (
        rows.join(source_intents, on="form", how="left")
        .with_columns(
            target_intent=pl.col("target").str.split("|").list.first().replace("", None),
            target_slots=pl.col("target").str.splitn("|", 2).struct.field("field_1"),
        )
        .with_columns(
            domain_change=(intent_domain(pl.col("source_intent")) != intent_domain(pl.col("target_intent"))).fill_null(
                False
            )
        )
        .drop("target")
        .rename({"form": "source", "target_form": "target"})
        .filter(pl.col("target").is_not_null() & (pl.col("source") != pl.col("target")))
    )

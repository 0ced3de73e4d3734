"""The retrieval learner's side of the contract: ``RetrievalLearner.fit(logs) -> RetrievalTables``.

The fitting itself is ``learners.retrieval_ranker.fit_retrieval`` (what worked, the global forms, the ranker fitted on
mined repairs); this module gives it the learner contract: the artifact holds exactly what the artifact set stores
(``retrieval/ranker.json``, ``retrieval/successes.parquet``, ``retrieval/global_forms.parquet``,
``personal/<user>/retrieval.parquet``), so a set saved, loaded and saved again is the same set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from selflearn.learners.base import Artifact, Logs
from selflearn.learners.mining import MiningConfig
from selflearn.learners.retrieval_ranker import fit_retrieval
from selflearn.learners.signals import evidence
from selflearn.runtime.retrieval import (
    DAY0,
    GLOBAL_FORMS,
    PERSONAL_HISTORY,
    RANKER_FILE,
    SUCCESS_KEYS,
    SUCCESS_TABLE,
    History,
    Ranker,
    RetrievalConfig,
    save_history,
    successes,
)
from selflearn.runtime.rewrites import PERSONAL_DIR
from selflearn.text import normalize


@dataclass
class RetrievalTables(Artifact):
    """The retrieval learner's artifact: the ranker and what worked (per home, globally, per user)."""

    ranker: Ranker = DAY0
    """The fitted ranker (the day-0 one without home configurations)."""
    successes: pl.DataFrame = field(default_factory=lambda: successes(pl.DataFrame(schema=dict.fromkeys(
        SUCCESS_KEYS, pl.String)).cast({"hour": pl.Int64})))  # fmt: skip
    """Per home what worked, without user ids (``SUCCESS_KEYS`` and ``count``)."""
    global_forms: list[tuple[str, str]] = field(default_factory=list)
    """k-anonymous (match, text) pairs that name nothing of a home."""
    user_texts: dict[str, list[str]] = field(default_factory=dict)
    """Per user, the texts that worked for them (sorted)."""
    stats: dict[str, float] = field(default_factory=dict)
    """How it was fitted (queries, candidates, positives, ...), for the learn report."""

    marker: ClassVar[Path] = RANKER_FILE
    """The file whose presence in an artifact set means this artifact is there (``find``)."""

    def save(self, root: Path) -> None:
        self.ranker.save(root / RANKER_FILE)
        history = History(global_forms=self.global_forms, user_texts={u: set(t) for u, t in self.user_texts.items()})
        save_history(root, self.successes, history)

    @classmethod
    def load(cls, root: Path) -> RetrievalTables:
        forms = pl.read_parquet(root / GLOBAL_FORMS) if (root / GLOBAL_FORMS).exists() else None
        own = {
            path.parent.name: pl.read_parquet(path)["text"].to_list()
            for path in sorted((root / PERSONAL_DIR).glob(f"*/{PERSONAL_HISTORY}"))
        }
        return cls(
            Ranker.load(root / RANKER_FILE),
            pl.read_parquet(root / SUCCESS_TABLE),
            [] if forms is None else list(zip(forms["match"].to_list(), forms["text"].to_list(), strict=True)),
            own,
        )

    def apply(self, logs: Logs) -> pl.DataFrame:
        """Per turn, what worked in its home for its heard words (the ranker's ``worked`` history): the text most
        often reached from them (``text``) and how often (``worked``); nulls where nothing did."""
        turns = logs.turns().select("turn_id", "home_id", match=pl.col("asr_text").fill_null(""))
        turns = turns.with_columns(pl.col("match").map_elements(normalize, return_dtype=pl.String))
        best = (
            self.successes.group_by("home_id", "match", "text")
            .agg(pl.col("count").sum())
            .sort(["count", "text"], descending=[True, False])
            .group_by("home_id", "match", maintain_order=True)
            .agg(pl.col("text").first(), worked=pl.col("count").sum())
        )
        return turns.join(best, on=["home_id", "match"], how="left", maintain_order="left").select(
            "turn_id", "text", "worked"
        )

    def summary(self) -> dict[str, Any]:
        return self.stats


class RetrievalLearner:
    """``RetrievalLearner(config, mining).fit(logs) -> RetrievalTables`` (homes and links from ``Evidence``)."""

    name: ClassVar[str] = "retrieval"
    """The learner's name in ``LearnConfig.learners`` and in the learn report."""

    def __init__(self, config: RetrievalConfig | None = None, mining: MiningConfig | None = None, *, seed: int = 0):
        self.config = config or RetrievalConfig()
        self.mining = mining or MiningConfig()
        self.seed = seed

    def fit(self, logs: Logs) -> RetrievalTables:
        ev = evidence(logs, self.mining.signals)
        ranker, worked, history, stats = fit_retrieval(
            ev.scored, ev.links, ev.homes, self.config, self.mining, seed=self.seed
        )
        texts = {user: sorted(own) for user, own in history.user_texts.items()}
        return RetrievalTables(ranker, successes(worked), history.global_forms, texts, stats)

"""The dashboard's view of the store: a ``Snapshot`` of the scored logs per home, built in a background thread by
``Logs`` so that no page waits for a whole store to be scored, with forgotten people dropped from it at once."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from selflearn.gold import turn_truth
from selflearn.learners.signals import DefectSignals
from selflearn.runtime.feedback import FEEDBACK_QUESTION
from selflearn.service.trend import trend_figure

if TYPE_CHECKING:
    from selflearn.service.service import Service

LOGS_SECONDS = 5.0  # a snapshot of the scored logs older than this is rebuilt in the background
WAIT_SECONDS = 0.3  # how long a page waits for the first snapshot before showing the "still reading" page
EXAMPLES = 3


@dataclass(frozen=True)
class Snapshot:
    """What the pages read, computed from the store in one pass, per home (a viewer's pages only combine its homes)."""

    heard: dict[str, pl.DataFrame]
    """Home id -> its turns (ts, user_id, form, asr_text, response_text): rule evidence."""
    daily: pl.DataFrame
    """(home_id, day): turns, defects (signals), gold_turns, gold_defects, rewrites."""
    forms: pl.DataFrame
    """(home_id, form) with a defect: failures, turns, users, people (per user), examples (latest failing turns)."""
    user_turns: dict[str, int]
    """User id -> turns."""
    asked: dict[str, int]
    """Home id -> times "Did I get that right?" was asked."""
    answers: pl.DataFrame
    """Feedback answers (not teachings) beside what was said and answered, newest first."""


def build_snapshot(turns: pl.DataFrame, feedback: pl.DataFrame, truth: pl.DataFrame) -> Snapshot:
    """Score the turns with the defect signals and aggregate them per home for the pages."""
    scored = DefectSignals().score_frame(turns, feedback)
    request = scored.filter(~pl.col("meta"))
    judged = (
        request.join(truth, on="turn_id", how="left")
        if truth.height
        else request.with_columns(true_defect=pl.lit(None, dtype=pl.Boolean))
    )
    daily = judged.group_by("home_id", day=pl.col("ts").dt.date()).agg(
        turns=pl.len(),
        defects=pl.col("defect").sum(),
        gold_turns=pl.col("true_defect").is_not_null().sum(),
        gold_defects=pl.col("true_defect").sum(),
        rewrites=(pl.col("rewrite_source") != "none").sum(),
    )
    examples = (
        request.filter(pl.col("defect"))
        .sort("ts", descending=True)  # groups keep this order: the examples are the latest
        .group_by("home_id", "form")
        .agg(examples=pl.struct("ts", "user_id", "asr_text", "response_text", "result_status").head(EXAMPLES))
    )
    people = request.group_by("home_id", "form", "user_id").agg(failures=pl.col("defect").sum(), turns=pl.len())
    shares = people.group_by("home_id", "form").agg(people=pl.struct("user_id", "failures", "turns"))
    forms = form_counts(shares).join(examples, on=["home_id", "form"], how="inner")
    asking = request.filter(pl.col("response_text").str.contains(FEEDBACK_QUESTION, literal=True))
    said = scored.select("turn_id", "home_id", "asr_text", "response_text")
    answers = feedback.filter(pl.col("kind") != "teach").join(said, on="turn_id", how="left")
    heard = scored.select("home_id", "ts", "user_id", "form", "asr_text", "response_text")
    return Snapshot(
        heard={str(k[0]): v for k, v in heard.partition_by("home_id", as_dict=True).items()},
        daily=daily,
        forms=forms,
        user_turns=dict(scored.group_by("user_id").len().iter_rows()),
        asked=dict(asking.group_by("home_id").len().iter_rows()),
        answers=answers.sort("ts", descending=True),
    )


class Logs:
    """The pages' ``Snapshot`` of the store, always built in a thread: scoring a million turns takes seconds, a page
    must not. The first touch of the dashboard starts the build; until it is done a page waits at most
    ``WAIT_SECONDS`` and then shows a self-refreshing "still reading" page. Later, a snapshot older than
    ``LOGS_SECONDS`` (or three times its build time, so a large store is not re-scored back to back) is rebuilt while
    pages are served from the last one. One build at a time; none starts, or reads the store, once the service
    closes."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._building = threading.Lock()  # held by the one running build, from its start to its end
        self._at = -math.inf
        self._every = LOGS_SECONDS
        self._snapshot: Snapshot | None = None
        self._built = threading.Event()  # set once the first snapshot exists
        self.reading: int | None = None  # turns in the store when the running build began reading it
        self._forgotten: list[str] = []  # people forgotten so far, in order: a build drops those after its read
        self._swap = threading.Lock()  # guards replacing the snapshot against a concurrent forget

    def _build(self) -> None:
        try:
            start = time.monotonic()
            self.service.flush()  # after a close the buffer is empty: this writes nothing
            with self.service.store_lock:
                if self.service.closed:
                    return
                self.reading = self.service.store.counts()["turns"]
                read_after = len(self._forgotten)
                logs = self.service.store.logs()
                truth = turn_truth(self.service.store)
            snapshot = build_snapshot(logs.turns(), logs.feedback(), truth)
            with self._swap:
                for user_id in self._forgotten[read_after:]:
                    snapshot = without(snapshot, user_id)
                self._snapshot = snapshot
            if not self._built.is_set():  # plotly loads its figure code on first use (~1 s under load): not on a page
                trend_figure(snapshot.daily.head(1), []).to_json()
            self._at = time.monotonic()
            self._every = max(LOGS_SECONDS, 3 * (self._at - start))
            self._built.set()
        finally:
            self._building.release()

    def start(self) -> None:
        """Start a build unless one is running or the service is closed."""
        if not self.service.closed and self._building.acquire(blocking=False):
            # not a daemon (a thread started from a server's daemon worker would inherit that): an exit waits for it
            # rather than killing it inside the DuckDB / Polars code, which aborts the process
            threading.Thread(target=self._build, name="selflearn-dashboard-logs", daemon=False).start()

    def current(self) -> Snapshot | None:
        """The last snapshot (a stale one starts a rebuild), or None while the first is still being built."""
        if self._snapshot is None:
            self.start()
            self._built.wait(WAIT_SECONDS)
        elif time.monotonic() - self._at >= self._every:
            self.start()
        return self._snapshot

    def forget(self, user_id: str) -> None:
        """Drop a forgotten person's turns and words from the snapshot at once (``Service.forget`` calls this, from
        the API or a page), and from a build that read the store before they were forgotten; a rebuild starts."""
        with self._swap:
            self._forgotten.append(user_id)
            if self._snapshot is not None:
                self._snapshot = without(self._snapshot, user_id)
        self._at = -math.inf


def form_counts(forms: pl.DataFrame) -> pl.DataFrame:
    """Per failing form, its failures, turns and users from its ``people``; forms nobody failed on are dropped."""
    share = pl.col("people").list
    return forms.with_columns(
        failures=share.eval(pl.element().struct.field("failures")).list.sum(),
        turns=share.eval(pl.element().struct.field("turns")).list.sum(),
        users=share.len(),
    ).filter(pl.col("failures") > 0)


def without(snap: Snapshot, user_id: str) -> Snapshot:
    """The snapshot without one person's turns and words: their share of each form (a form only they failed on
    goes), examples, answers and heard turns. The daily counts (no words) stay until the rebuild this starts."""
    others = pl.element().filter(pl.element().struct.field("user_id") != user_id)
    return Snapshot(
        heard={h: f.filter(pl.col("user_id") != user_id) for h, f in snap.heard.items()},
        daily=snap.daily,
        forms=form_counts(snap.forms.with_columns(pl.col("people", "examples").list.eval(others))),
        user_turns={u: n for u, n in snap.user_turns.items() if u != user_id},
        asked=snap.asked,
        answers=snap.answers.filter(pl.col("user_id") != user_id),
    )

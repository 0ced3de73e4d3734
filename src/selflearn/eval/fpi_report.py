"""What ``selflearn fpi`` prints: per-stage failure counts and the top failing forms of a store or of freshly
simulated days, labelled by the published FPI model (or one trained on those logs' weak labels)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from selflearn.errors import NotFound
from selflearn.learners.fpi import FpiLearner, FpiModel, failure_summary, label_frame
from selflearn.learners.labels.dialogue import dialogue_frame

logger = logging.getLogger(__name__)


def fpi_report(
    *,
    days: int,
    seed: int = 0,
    db: Path | None = None,
    home: Path | None = None,
    top: int = 5,
    artifacts: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """What ``selflearn fpi`` prints: per-stage failure counts and top failing forms over a store's last ``days``
    days (``db``) or ``days`` freshly simulated days. Uses the published FPI model when the current artifact set has
    one (``selflearn learn --labels``), else trains one on these logs' weak labels."""
    from selflearn.artifacts import ArtifactStore
    from selflearn.learners.signals import DefectSignals

    say = progress or logger.info
    if db is not None:
        from selflearn.store.logstore import Store

        with Store(db, create=False) as store:
            view = store.logs()
        latest = view.turns()["ts"].max()
        since = latest - timedelta(days=days) if isinstance(latest, datetime) else None
        turns, feedback = view.turns(since=since), view.feedback()
        if turns.is_empty():
            raise NotFound(f"store {db} has no turns to isolate failures in")
        source = f"store {db}, last {days} days"
    else:
        from selflearn.home import load_home, shipped_homes
        from selflearn.schema import Turn, to_arrow
        from selflearn.sim import Simulation

        sim = Simulation([load_home(home)] if home else shipped_homes(), seed=seed)
        records: list[Turn] = []
        for day in range(days):
            records.extend(sim.run_day(day).turns)
            say(f"simulated day {day}: {len(records)} turns so far")
        turns = pl.from_arrow(to_arrow(records, Turn))  # type: ignore[assignment]
        feedback = None
        source = f"simulated {days} days, seed {seed}"
    signals = DefectSignals().score_frame(turns, feedback)
    frame = dialogue_frame(turns, signals)
    current = ArtifactStore(artifacts).current_dir()
    if current is not None and (current / FpiModel.marker).exists():
        model = FpiModel.load(current)
        say(f"using the published FPI model ({current.name})")
    else:
        say("training the FPI model on these logs' weak labels")
        model = FpiLearner().fit_frame(frame)
    frame = model.prepare(frame)
    labels, conf = model.predict(frame)
    labelled = label_frame(frame, labels, conf)
    return {
        "source": source,
        "turns": frame.height,
        "dialogues": frame["dialogue_id"].n_unique(),
        "stages": failure_summary(labelled, top=top),
    }

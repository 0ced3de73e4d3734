"""Fit the day-0 retrieval ranker (``selflearn.runtime.retrieval.DAY0``) on SLURP's EVEN devel rows.

Run from the repo root: ``python scripts/fit_day0_ranker.py [SLURP_DIR]``; prints the weights and thresholds that
``DAY0`` holds. Only even ``slurp_id`` rows are read (the rows simulated people's wordings may come from; the odd
rows and the ASR pairs are the ``realphrasing`` eval and are never read here). Home-control rows are labelled by
the suite's SLURP -> runtime mapping (right intent, no other device/room/number named); out-of-scope rows have no
right candidate. History features are 0 on day 0, so only the first five weights are fitted; the history weights
are set by hand (small, positive).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from selflearn.eval.suites.realphrasing import HOME, Row, target
from selflearn.home import load_home
from selflearn.learners.retrieval_ranker import choose_thresholds
from selflearn.runtime.retrieval import DAY0, Retrieval

WAKE = re.compile(r"^(hey |ok |okay )?(alexa|olly|siri|google|ollie)[, ]+")
OUT_OF_SCOPE = {"calendar", "email", "qa", "news", "social", "transport", "lists", "cooking", "takeaway",
                "recommendation", "general"}  # fmt: skip
HISTORY_WEIGHTS = (1.0, 1.0, 0.5, 0.5)  # own, prior, hour, worked


def main(src: Path) -> None:
    home = load_home(HOME)
    retrieval = Retrieval()
    now = datetime(2026, 1, 5, 18, tzinfo=UTC)
    feats, labels, acts, group = [], [], [], []
    for q, line in enumerate((src / "devel.jsonl").read_text().splitlines()):
        r = json.loads(line)
        if r["slurp_id"] % 2:
            continue
        row = Row(WAKE.sub("", r["sentence"].lower()).strip(), "devel", "home", r["scenario"], r["intent"], {})
        want = target(row)
        if want is None and r["scenario"] not in OUT_OF_SCOPE:
            continue
        for s in retrieval.candidates(row.text, user_id="", home=home, now=now):
            feats.append(s.features)
            labels.append(int(want is not None and s.entry.intent in want.intents and s.features[4] == 0))
            acts.append(s.entry.acts)
            group.append(q)
    x, y, a, g = np.array(feats), np.array(labels), np.array(acts), np.array(group)
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(x[:, :5], y)
    weights = tuple(round(float(w), 1) for w in model.coef_[0]) + HISTORY_WEIGHTS
    ranker = replace(DAY0, weights=weights, bias=round(float(model.intercept_[0]), 1))
    probs = ranker.probabilities(x)
    tops = []
    for q in np.unique(g):
        i = int(np.argmax(np.where(g == q, probs, -1.0)))
        tops.append((float(probs[i]), bool(a[i]), int(y[i])))
    threshold, action_threshold, value = choose_thresholds(tops)
    print(json.dumps({"weights": weights, "bias": ranker.bias, "threshold": threshold,
                      "action_threshold": action_threshold, "utility": value, "queries": len(tops)}))  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "data" / "slurp")

"""Diagnose ``realphrasing`` on SLURP's EVEN devel rows only (the rows fitting and tuning may read).

Run from the repo root: ``python scripts/realphrasing_dev.py [SLURP_DIR] [--artifacts DIR]``. Every even home-control
row goes through the untrained runtime and the zero-shot retrieval runtime (or a published artifact set's), and
each row the retrieval arm gets wrong is put in the stage that lost it: the NLU's own confident misreading (the
runtime never asks retrieval), no right candidate among the k nearest, a right one ranked below a wrong one, the
right one on top but abstained, a wrong one accepted. Out-of-scope even rows count false actions by who made them
(the NLU itself or retrieval). The odd rows and the ASR pairs (the eval) are never read here.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vendor_realphrasing import IN_SCOPE, OUT_OF_SCOPE, entities, text

from selflearn.artifacts import ArtifactStore
from selflearn.eval.suites.realphrasing import FULL, HOME, Row, device_action, learned_runtimes, right_intent, target
from selflearn.home import load_home
from selflearn.runtime.retrieval import Retrieval, RetrievalConfig
from selflearn.runtime.runtime import Runtime
from selflearn.sim.asr import AsrConfig, AsrModel
from selflearn.sim.simulation import RECOGNIZER_WORDS


def even_rows(src: Path) -> list[Row]:
    rows = []
    for line in (src / "devel.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["slurp_id"] % 2:
            continue  # odd ids are the eval's
        scope = "home" if r["scenario"] in IN_SCOPE else "out" if r["scenario"] in OUT_OF_SCOPE else None
        row = Row(
            text(r["sentence"]), "devel", scope or "", r["scenario"], r["intent"], entities(r["sentence_annotation"])
        )
        if scope == "out" or (scope == "home" and target(row) is not None):
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "src", nargs="?", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "slurp"
    )
    parser.add_argument("--artifacts", type=Path, help="an artifact store (its current set's retrieval, no rules)")
    parser.add_argument("--min-action-repairs", type=int, default=RetrievalConfig().min_action_repairs)
    parser.add_argument(
        "--learned",
        nargs="*",
        choices=("templates", "realistic"),
        default=(),
        help="also the suite's learned arm (full plan), simulated with each phrasing given; stages are diagnosed "
        "for the last; rows an index entry of any learned arm matches are skipped in every arm",
    )
    parser.add_argument(
        "--asr", action="store_true", help="the rows as the simulator's SLURP-calibrated recognizer hears them (rate 1)"
    )
    parser.add_argument("--days", type=int, default=FULL.days, help="the learned arm's simulated days")
    parser.add_argument("--homes", type=int, default=FULL.homes, help="the learned arm's generated homes")
    parser.add_argument("--show", type=int, default=0, help="print this many rows per loss stage")
    args = parser.parse_args()
    home = load_home(HOME)
    config = RetrievalConfig(min_action_repairs=args.min_action_repairs)
    current = ArtifactStore(args.artifacts).current_dir() if args.artifacts else None
    retrieval = Retrieval.load(current, config=config) if current else Retrieval(config=config)
    arms = {"untrained": Runtime(home), "retrieval": Runtime(home, retriever=retrieval)}
    rows = even_rows(args.src)
    if args.asr:
        model, rng = AsrModel(AsrConfig(rate=1.0), vocabulary=RECOGNIZER_WORDS), random.Random(0)
        rows = [replace(r, text=t) for r in rows if (t := model.transcribe(r.text, rng).text)]
    seen: set[str] = set()
    for phrasing in args.learned:
        work = Path(tempfile.mkdtemp(prefix="realphrasing-dev-"))
        plan = replace(FULL, phrasing=phrasing, days=args.days, homes=args.homes)
        arms[f"learned_{phrasing}"], _, summary = learned_runtimes(home, plan, 0, work)
        current = ArtifactStore(work / "artifacts").current_dir()
        assert current is not None
        retrieval = Retrieval.load(current)
        matches = {e.match for e in retrieval.index(home).entries if e.source != "canonical"}
        seen |= matches
        print(json.dumps({"phrasing": phrasing, "rows_in_index": sum(r.text in matches for r in rows), **summary}))
    rows = [r for r in rows if r.text not in seen]
    last = list(arms)[-1]
    endpoint = next((e for e in home.endpoints if e.type == "speaker"), home.endpoints[0])
    user = next((p.id for p in home.people if endpoint.id in p.endpoints), "realphrasing.user")
    now = datetime(2026, 1, 5, 18, 0, tzinfo=UTC)
    stages: Counter[str] = Counter()
    shown: dict[str, list[str]] = {}
    right = {a: 0 for a in arms}
    false = {a: 0 for a in arms}
    false_by: Counter[str] = Counter()
    for row in rows:
        res = {}
        for name, rt in arms.items():
            res[name] = rt.interpret(row.text, user_id=user, endpoint_id=endpoint.id, now=now)
            rt.forget(user)
        it = res[last]
        if row.scope == "out":
            for name in arms:
                false[name] += device_action(res[name])
            if device_action(it):
                stage = "oos_retrieval" if it.turn.rewrite_source == "retrieval" else "oos_nlu"
                false_by[stage] += 1
                shown.setdefault(stage, []).append(f"{row.text!r} -> {it.turn.nlu_intent} {it.stages.get('retrieval')}")
            continue
        ok = {n: right_intent(row, res[n].turn, home) and res[n].status == "success" for n in arms}
        for n in arms:
            right[n] += ok[n]
        if ok[last]:
            stage = "right_nlu" if "retrieval" not in it.stages else "right_retrieval"
        elif "retrieval" not in it.stages:
            stage = "nlu_confident_wrong"
        else:
            want = target(row)
            cands = retrieval.candidates(row.text, user_id=user, home=home, now=now)
            good = [i for i, s in enumerate(cands) if want and s.entry.intent in want.intents and s.features[4] == 0]
            applied = it.stages["retrieval"]["applied"]
            if not good:
                stage = "no_right_candidate" + ("_accepted_wrong" if applied else "")
            elif good[0] > 0:
                stage = "right_ranked_low" + ("_accepted_wrong" if applied else "")
            elif not applied:
                stage = "right_top_abstained"
            else:
                stage = "right_top_accepted_but_wrong"  # device/area/step mismatch after rewrite
        stages[stage] += 1
        top = retrieval.candidates(row.text, user_id=user, home=home, now=now)[:1]
        shown.setdefault(stage, []).append(
            f"{row.text!r} [{row.intent} {row.entities}] -> {it.turn.nlu_intent} {it.turn.nlu_slots} "
            f"top={[(s.entry.text, round(s.probability, 3)) for s in top]}"
        )
    n_home = sum(r.scope == "home" for r in rows)
    n_out = len(rows) - n_home
    print(
        json.dumps(
            {
                "n_home": n_home,
                "n_out": n_out,
                "success": {a: round(right[a] / n_home, 3) for a in arms},
                "false_action": {a: round(false[a] / n_out, 4) for a in arms},
                "stages": dict(stages.most_common()),
                "false_by": dict(false_by),
            },
            indent=1,
        )
    )
    for stage, lines in shown.items():
        for line in lines[: args.show]:
            print(stage, "|", line)


if __name__ == "__main__":
    main()

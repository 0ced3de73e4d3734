"""Vendor the ``realphrasing`` eval subset of SLURP into ``src/selflearn/data/slurp/realphrasing_eval.jsonl.gz``.

Run from the repo root with the read-only SLURP copy beside it: ``python scripts/vendor_realphrasing.py [SLURP_DIR]``.
EVALUATION ONLY: the rows come from the ODD ``slurp_id`` rows of ``devel.jsonl`` and from the reference texts and
real ASR 1-best transcripts of ``asr_pairs_even.jsonl`` (SLURP test recordings), which the simulator's people and
the learners must never see. A text also said by an EVEN devel row (the rows the simulator's wordings may come
from) is dropped, so a simulated person can never say an eval sentence. SLURP text is CC BY 4.0 (LICENSE.txt).
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "selflearn" / "data" / "slurp" / "realphrasing_eval.jsonl.gz"
WAKE = re.compile(r"^(hey |ok |okay )?(alexa|olly|siri|google|ollie)[, ]+|[, ]+(alexa|olly|siri|ollie)$")
SPAN = re.compile(r"\[(\w+) : ([^\]]+)\]")
PUNCT = re.compile(r"[^\w\s']")
# Home control: the runtime has intents for these. Out of scope: requests no smart home acts on (false actions are
# counted there). SLURP's play/music/alarm scenarios are neither (the runtime plays media and sets timers) and are
# left out.
IN_SCOPE = frozenset({"iot", "audio", "weather", "datetime"})
OUT_OF_SCOPE = frozenset(
    {"calendar", "email", "qa", "news", "social", "transport", "lists", "cooking", "takeaway", "recommendation",
     "general"}
)  # fmt: skip


def text(sentence: str) -> str:
    """Lowercase, no punctuation but apostrophes, wake word removed (the device heard it, the NLU does not)."""
    return WAKE.sub("", " ".join(PUNCT.sub(" ", sentence.lower()).split())).strip()


def entities(annotation: str) -> dict[str, str]:
    return {m.group(1): " ".join(m.group(2).lower().split()) for m in SPAN.finditer(annotation)}


def main(src: Path) -> None:
    devel = [json.loads(line) for line in (src / "devel.jsonl").read_text().splitlines() if line.strip()]
    pairs = [json.loads(line) for line in (src / "asr_pairs_even.jsonl").read_text().splitlines() if line.strip()]
    said_by_even = {text(r["sentence"]) for r in devel if r["slurp_id"] % 2 == 0}
    rows: list[dict[str, object]] = []
    seen: set[tuple[str, str]] = set()

    def add(slurp_id: int, source: str, utterance: str, r: dict[str, str], annotation: str) -> None:
        scope = "home" if r["scenario"] in IN_SCOPE else "out" if r["scenario"] in OUT_OF_SCOPE else None
        utterance = text(utterance)
        if scope is None or not utterance or utterance in said_by_even or (source, utterance) in seen:
            return
        seen.add((source, utterance))
        rows.append(
            {"id": slurp_id, "source": source, "text": utterance, "scope": scope, "scenario": r["scenario"],
             "intent": r["intent"], "entities": entities(annotation)}
        )  # fmt: skip

    for r in devel:
        if r["slurp_id"] % 2 == 1:
            add(r["slurp_id"], "devel", r["sentence"], r, r["sentence_annotation"])
    for p in pairs:
        add(p["slurp_id"], "asr_ref", p["reference"], p, p["annotation"])
        add(p["slurp_id"], "asr_hyp", p["asr_hypothesis"], p, p["annotation"])
    rows.sort(key=lambda r: (str(r["source"]), int(str(r["id"])), str(r["text"])))
    with gzip.open(OUT, "wt", encoding="utf-8", compresslevel=9) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} eval rows -> {OUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "data" / "slurp")

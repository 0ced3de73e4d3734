"""Vendor the small SLURP subsets the simulator needs at run time into ``src/selflearn/data/slurp/``.

Run from the repo root with the read-only SLURP copy beside it: ``python scripts/vendor_slurp.py [SLURP_DIR]``.
Writes ``asr_pairs.jsonl.gz`` (reference, real ASR 1-best, entity annotation), ``phrasings.jsonl`` (real
smart-home wordings with their entities turned into slots) and ``heldout_forms.txt`` (hashes of the texts the
simulator must never say). SLURP text is CC BY 4.0 (see LICENSE.txt there).

The split is a hard rule: only devel rows with an EVEN ``slurp_id`` may become simulated people's wordings; ODD
ids and the texts (reference and hypothesis) of the ASR pairs are evaluation-only. An even row whose text is also
an evaluation text is dropped too, and the evaluation texts' forms are vendored as hashes so that the simulator
can steer around them (``selflearn.sim.heldout``) without holding them as wordings.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path

from selflearn.sim.heldout import form_hash
from selflearn.text import normalize

OUT = Path(__file__).resolve().parents[1] / "src" / "selflearn" / "data" / "slurp"
WAKE = re.compile(r"^(hey |ok |okay )?(alexa|olly|siri|google|ollie)[, ]+")
SPAN = re.compile(r"\[(\w+) : ([^\]]+)\]")

# SLURP intent -> (simulator goal kind, {SLURP entity type: our slot}); rows with other entity types are dropped.
KINDS: dict[str, tuple[str, dict[str, str]]] = {
    "iot_hue_lightoff": ("lights_off", {"house_place": "area", "device_type": "device"}),
    "hue_lightoff": ("lights_off", {"house_place": "area", "device_type": "device"}),
    "iot_hue_lighton": ("lights_on", {"house_place": "area", "device_type": "device"}),
    "iot_wemo_on": ("device_on", {"device_type": "device"}),
    "iot_wemo_off": ("device_off", {"device_type": "device"}),
    "iot_hue_lightdim": ("lights_dim", {"house_place": "area"}),
    "iot_hue_lightup": ("lights_up", {"house_place": "area"}),
    "hue_lightup": ("lights_up", {"house_place": "area"}),
    "iot_coffee": ("coffee", {}),
    "iot_cleaning": ("vacuum", {"device_type": "device", "house_place": "area"}),
    "cleaning": ("vacuum", {"device_type": "device", "house_place": "area"}),
    "weather_query": ("weather", {"place_name": "city"}),
    "play_music": ("play_genre", {"music_genre": "genre"}),
    "audio_volume_up": ("volume_up", {}),
    "audio_volume_down": ("volume_down", {}),
    "audio_volume_mute": ("mute", {}),
    "datetime_query": ("time", {}),
    "general_quirky": ("impossible", {}),
    "qa_factoid": ("impossible", {}),
    "social_post": ("chatter", {}),
    "email_sendemail": ("chatter", {}),
    "news_query": ("chatter", {}),
}
SKIP_TIME = re.compile(
    r"\b(tomorrow|tonight|week|weekend|monday|tuesday|wednesday|thursday|friday|saturday|sunday|"
    r"morning|evening|afternoon|next|later|yesterday|degrees|fahrenheit|celsius|date|day)\b"
)


def template(annotation: str, slots: dict[str, str]) -> str | None:
    """The annotated sentence with mapped entities replaced by ``{slot}``; None if it has an unmapped entity."""
    unmapped = False

    def sub(m: re.Match[str]) -> str:
        nonlocal unmapped
        slot = slots.get(m.group(1))
        if slot is None:
            unmapped = True
            return m.group(2)
        return "{" + slot + "}"

    text = WAKE.sub("", SPAN.sub(sub, annotation.lower())).strip()
    return None if unmapped or not text else text


def heldout_forms(devel: list[dict], pairs: list[dict]) -> set[str]:
    """Normalised forms of every evaluation-only text (odd devel ids, both sides of the ASR pairs), with and
    without a leading wake word."""
    texts = [r["sentence"] for r in devel if r["slurp_id"] % 2] + [
        t for p in pairs for t in (p["reference"], p["asr_hypothesis"])
    ]
    forms = {normalize(t) for t in texts} | {normalize(WAKE.sub("", t.lower())) for t in texts}
    return forms - {""}


def main(src: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    pairs = [json.loads(line) for line in (src / "asr_pairs_even.jsonl").read_text().splitlines() if line.strip()]
    devel = [json.loads(line) for line in (src / "devel.jsonl").read_text().splitlines() if line.strip()]
    heldout = heldout_forms(devel, pairs)
    (OUT / "heldout_forms.txt").write_text("".join(f"{h}\n" for h in sorted({form_hash(f) for f in heldout})))
    with gzip.open(OUT / "asr_pairs.jsonl.gz", "wt", encoding="utf-8", compresslevel=9) as f:
        for p in pairs:
            row = {"id": p["slurp_id"], "ref": p["reference"], "hyp": p["asr_hypothesis"], "ann": p["annotation"]}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    seen: set[tuple[str, str]] = set()
    rows = []
    for r in devel:
        if r["slurp_id"] % 2 or r["intent"] not in KINDS:
            continue
        spoken = normalize(r["sentence"])
        if spoken in heldout or normalize(WAKE.sub("", r["sentence"].lower())) in heldout:
            continue
        kind, slots = KINDS[r["intent"]]
        text = template(r["sentence_annotation"], slots)
        if text is None or len(text.split()) > 14:
            continue
        if kind in {"weather", "time"} and SKIP_TIME.search(text):
            continue
        if kind.startswith("lights_") and "{device}" in text:
            kind = "device_off" if kind == "lights_off" else "device_on"
            if "{area}" in text:
                continue
        if kind.startswith("device_") and "{device}" not in text:
            continue
        if (kind, text) not in seen:
            seen.add((kind, text))
            rows.append({"id": r["slurp_id"], "kind": kind, "template": text})
    rows.sort(key=lambda r: (r["kind"], r["template"]))
    with open(OUT / "phrasings.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(pairs)} ASR pairs, {len(rows)} phrasings (even ids), {len(heldout)} held-out forms -> {OUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "data" / "slurp")

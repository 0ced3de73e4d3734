"""No leak: evaluation-only SLURP texts (odd devel ids, both sides of the ASR pairs) never become simulated
people's wordings, nor the true or heard text of a simulated turn.

The forms come from the vendored data (``asr_pairs.jsonl.gz`` texts, ``heldout_forms.txt``), so the test runs in
any clone; when the raw SLURP copy sits beside the repo (``../shared/data/slurp``) its texts are checked too.
"""

import gzip
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from selflearn.home import shipped_homes
from selflearn.sim import SimConfig, generate_homes
from selflearn.sim.asr import PAIRS_PATH
from selflearn.sim.goals import GoalFactory
from selflearn.sim.heldout import avoid, form_hash, heldout_hashes, is_heldout
from selflearn.sim.names import CHATTER, IMPOSSIBLE
from selflearn.sim.phrasing import (
    CANONICAL,
    FIRST,
    IDIOSYNCRATIC,
    NEGATIVES,
    PHRASINGS_PATH,
    fits,
    render,
    slurp_templates,
)
from selflearn.sim.run import simulate
from selflearn.sim.variation import INDIRECT, Phrasing, draw_style, styled
from selflearn.text import normalize

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "slurp"


def _vendored_pair_forms() -> set[str]:
    with gzip.open(PAIRS_PATH, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return {normalize(r[k]) for r in rows for k in ("ref", "hyp")} - {""}


def _raw_forms() -> set[str]:
    """Every evaluation-only form from the raw SLURP copy (empty when it is not beside the repo)."""
    if not (RAW / "devel.jsonl").exists():
        return set()
    devel = [json.loads(line) for line in (RAW / "devel.jsonl").read_text().splitlines() if line.strip()]
    pairs = [json.loads(line) for line in (RAW / "asr_pairs_even.jsonl").read_text().splitlines() if line.strip()]
    texts = [r["sentence"] for r in devel if r["slurp_id"] % 2]
    texts += [t for p in pairs for t in (p["reference"], p["asr_hypothesis"])]
    return {normalize(t) for t in texts} - {""}


@pytest.fixture(scope="module")
def forms() -> set[str]:
    """The evaluation texts as plain forms: vendored pairs, plus the raw copy when present."""
    return _vendored_pair_forms() | _raw_forms()


def _leaks(texts: Iterator[str], forms: set[str]) -> list[str]:
    """Texts equal to an evaluation text, by the plain forms and by the vendored hashes."""
    hashes = heldout_hashes()
    return sorted({t for t in texts if normalize(t) in forms or form_hash(normalize(t)) in hashes})


def test_vendored_hashes_cover_every_evaluation_text(forms: set[str]) -> None:
    hashes = heldout_hashes()
    assert len(forms) > 4000
    assert all(form_hash(f) in hashes for f in forms)
    assert is_heldout("Play music!") and not is_heldout(avoid("play music"))


def test_vendored_phrasings_are_even_devel_rows_only(forms: set[str]) -> None:
    rows = [json.loads(line) for line in PHRASINGS_PATH.read_text(encoding="utf-8").splitlines()]
    assert rows and all(r["id"] % 2 == 0 for r in rows)
    if (RAW / "devel.jsonl").exists():
        devel = {json.loads(line)["slurp_id"] for line in (RAW / "devel.jsonl").read_text().splitlines()}
        assert {r["id"] for r in rows} <= devel
    assert not _leaks((r["template"] for r in rows), forms)


def _possible_wordings() -> Iterator[str]:
    """Every template a simulated person may start from, plain and in a few realistic styles, rendered for every
    goal of a few homes, as said."""
    tables = (CANONICAL, FIRST, IDIOSYNCRATIC, slurp_templates(), INDIRECT)
    plain = [t for table in tables for ts in table.values() for t in ts]
    styles = [draw_style(random.Random(i)) for i in range(5)]
    templates = sorted({*plain, *(styled(t, s) for t in plain for s in styles)})
    yield from (avoid(t) for t in (*NEGATIVES, *CHATTER, *IMPOSSIBLE))
    for home in [*shipped_homes(), *generate_homes(3, seed=11)]:
        factory = GoalFactory(home)
        person = home.people[0]
        tastes = {"music_genre": "jazz", "team": "warriors", "cuisine": "italian", "city": "Springfield"}
        rng = random.Random(0)
        for kind in factory.kinds:
            for area in [a.id for a in home.areas]:
                goal = factory.make(kind, person, tastes, area, rng)
                yield from (avoid(render(t, goal)) for t in templates if fits(t, goal))


def test_no_possible_wording_is_an_evaluation_text(forms: set[str]) -> None:
    assert not _leaks(_possible_wordings(), forms)


@pytest.mark.parametrize("phrasing", ["templates", "realistic"])
def test_seeded_simulation_never_says_or_hears_an_evaluation_text(forms: set[str], phrasing: Phrasing) -> None:
    config = SimConfig(false_wakes_per_day=3.0, phrasing=phrasing)
    logs = simulate(generate_homes(12, seed=3), days=2, seed=3, config=config)
    said = [g.true_text for log in logs for g in log.gold]
    heard = [t.asr_text for log in logs for t in log.turns]
    typed = [x for log in logs for f in log.feedback for x in (f.text, f.correction_text) if x]
    assert len(said) > 500
    assert not _leaks(iter(said + heard + typed), forms)

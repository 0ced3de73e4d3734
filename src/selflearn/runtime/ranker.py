"""The rewrite ranker: scores a rule against an utterance as a documented weighted score (docs/rewriting.md).

Pure (no index, no encoder), so tests and the bench call it directly; the online rewriter keeps the candidates
that reach its threshold.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import jellyfish
from rapidfuzz import fuzz

from selflearn.home import Home
from selflearn.runtime.transfer import FILLER, flips, transfer
from selflearn.text import normalize


@dataclass(frozen=True)
class RankWeights:
    """The ranker as a documented weighted score (see docs/rewriting.md).

    ``similarity`` = cosine·w_cosine + string·w_string + phonetic·w_phonetic (normalised; 1 for an exact form hit,
    times ``untransferred`` when the rule's edit could not be located in the utterance and the whole target is used).
    ``evidence`` = base + (1 - base)·probability·support/(support + support_half), plus bonuses for the personal layer
    (the user's own history) and for a target that names an entity of *this* home/person the utterance lacked.
    score = similarity^sharpness · min(1, evidence).
    """

    cosine: float = 0.5
    """Weight of the embedding cosine in the similarity."""
    string: float = 0.25
    """Weight of the string similarity."""
    phonetic: float = 0.25
    """Weight of the phonetic similarity."""
    untransferred: float = 0.9
    """Similarity factor when the rule's edit could not be located in the utterance."""
    base: float = 0.5
    """Evidence of a rule before its probability and support count."""
    support_half: float = 1.0
    """Support at which a rule gets half of its probability's evidence."""
    personal_bonus: float = 0.1
    """Evidence added for a personal rule."""
    entity_bonus: float = 0.1
    """Evidence added when the utterance names an entity of the home."""
    sharpness: float = 2.0
    """Exponent on the similarity: higher punishes distant forms more."""


@dataclass(frozen=True)
class Rule:
    source: str
    """Failing form the rule rewrites."""
    target: str
    """What it rewrites it to."""
    probability: float
    """Absorption probability of the target from the source."""
    support: int
    """Repair chains behind the rule."""
    layer: str
    """The layer the rule is in: "personal" or "global"."""


@dataclass(frozen=True)
class Candidate:
    """One scored way to rewrite an utterance (kept whole for tracing and for the rewrite CLI)."""

    text: str
    """The rewritten utterance."""
    rule: Rule
    """The rule it came from."""
    cosine: float
    """Embedding cosine of the utterance and the rule's source."""
    string: float
    """String similarity of the two (0..1)."""
    phonetic: float
    """Phonetic similarity of the two (0..1)."""
    transferred: bool
    """The rule's edit was located in the utterance and applied there."""
    entity: bool
    """The utterance names an entity of the home."""
    score: float
    """The ranker's score (0..1)."""


@lru_cache(maxsize=200_000)
def _metaphone(form: str) -> str:
    return str(jellyfish.metaphone(form))


def home_entities(home: Home, user_id: str) -> list[str]:
    """Names that mean something in this home for this user: devices, areas, cities (normalised)."""
    names = [n for d in home.devices for n in d.names] + [n for a in home.areas for n in (a.name, *a.aliases)]
    names += [home.city] + [p.city or "" for p in home.people if p.id == user_id]
    return sorted({normalize(n) for n in names if n and normalize(n)}, key=len, reverse=True)


@lru_cache(maxsize=10_000)
def _name_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(name)}(?!\w)")


def _mentions(form: str, name: str) -> bool:
    """``name`` as whole words in ``form``; the substring test first, since most names are not there at all."""
    return name in form and _name_pattern(name).search(form) is not None


class Ranker:
    """Scores a (query, rule, retrieval) triple; pure, so tests and the bench can call it directly."""

    def __init__(self, weights: RankWeights) -> None:
        self.w = weights

    def score(
        self, query: str, rule: Rule, cosine: float, entities: Sequence[str], *, floor: float = 0.0
    ) -> Candidate | None:
        """The scored candidate, or None if the rule does not apply. ``floor``: a rule that could not reach it even
        with the entity bonus is dropped before the transfer (difflib: most of the cost when the neighbours are
        unrelated forms); the online path passes its threshold, below which it drops candidates anyway."""
        w = self.w
        exact = query == rule.source
        ratio = fuzz.ratio(query, rule.source)
        string = ratio / 100.0
        phonetic = fuzz.ratio(_metaphone(query), _metaphone(rule.source)) / 100.0
        if exact:
            similarity = 1.0
        else:
            similarity = (w.cosine * cosine + w.string * string + w.phonetic * phonetic) / (
                w.cosine + w.string + w.phonetic
            )
        evidence = w.base + (1 - w.base) * rule.probability * rule.support / (rule.support + w.support_half)
        bonus = w.personal_bonus * (rule.layer == "personal")
        if math.pow(max(similarity, 0.0), w.sharpness) * min(1.0, evidence + (bonus + w.entity_bonus)) < floor:
            return None
        text = transfer(query, rule.source, rule.target)
        transferred = text is not None
        if text is None:
            # The edit has no place in the query: the whole target is used only if the query is closer to the
            # failing form than to its fix (otherwise it is most likely a working variant already) and says
            # nothing the target would drop ("... to 19 degrees please" must not become "... to 18").
            said = set(query.split()) - set(rule.source.split()) - set(rule.target.split()) - FILLER
            if said or ratio <= fuzz.ratio(query, rule.target):
                return None
            text = rule.target
        if text == query or flips(query, text):
            return None
        similarity *= 1.0 if transferred else w.untransferred
        entity = any(_mentions(text, n) and not _mentions(query, n) for n in entities)
        evidence += bonus + w.entity_bonus * entity
        score = math.pow(max(similarity, 0.0), w.sharpness) * min(1.0, evidence)
        return Candidate(text, rule, cosine, string, phonetic, transferred, entity, score)

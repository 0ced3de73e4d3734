"""A seeded, text-level ASR noise model calibrated on real recognition errors (SLURP reference vs ASR 1-best).

Why text-level: the simulator needs millions of recognitions per minute, and what the learners must cope with is
the *shape* of real errors, not audio. The shape comes from the real pairs: per word class (entity "names",
function words, other content words) the substitution and deletion rates, the insertion rate and which short
words get inserted, and the real word-for-word confusions ("to" -> "two"). Words the real table never saw (a home's
device, place and person names) are confused with phonetic neighbours from a vocabulary of real words and names
(metaphone + Jaro-Winkler via jellyfish/rapidfuzz), and each word's confusion is systematic: "wilkerson" is heard as
"wilkinson" again and again, as a real recognizer with a fixed vocabulary does. Out-of-vocabulary words err more.
The confidence falls with the amount of damage, plus noise, so it correlates with error without revealing it.
"""

from __future__ import annotations

import bisect
import gzip
import json
import math
import random
import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from itertools import accumulate
from typing import Literal

import jellyfish
import jiwer
from rapidfuzz import fuzz, process

from selflearn import paths

WordClass = Literal["name", "function", "content"]
WORD_CLASSES: tuple[WordClass, ...] = ("name", "function", "content")
PAIRS_PATH = paths.PACKAGE_DATA / "slurp" / "asr_pairs.jsonl.gz"
_SPAN = re.compile(r"\[(\w+) : ([^\]]+)\]")
_WORD = re.compile(r"^(?!unk$)[a-z][a-z']*$")  # "<unk>" is the recognizer's unknown-word token, not a word

_FUNCTION_TEXT = """a an the and or but if of at by for with about to from in on off out up down over under into onto
    is are was
    were be been am do does did have has had can could will would shall should may might must i me my mine you your
    we our us they them their it its this that these those there here what which who whom whose when where why how
    all any some no not so than too very just please me what's it's i'm don't can't is it set turn make let get
    one two four"""
FUNCTION_WORDS = frozenset(_FUNCTION_TEXT.split())

# Classic English homophones a recognizer swaps with no acoustic cue; merged with the real confusion table.
HOMOPHONES: dict[str, tuple[str, ...]] = {
    "to": ("two", "too"),
    "two": ("to", "too"),
    "too": ("to", "two"),
    "for": ("four",),
    "four": ("for",),
    "right": ("write",),
    "write": ("right",),
    "there": ("their",),
    "their": ("there",),
    "hear": ("here",),
    "here": ("hear",),
    "weather": ("whether",),
    "one": ("won",),
    "eight": ("ate",),
    "by": ("buy", "bye"),
    "know": ("no",),
    "no": ("know",),
    "new": ("knew",),
    "our": ("hour",),
    "hour": ("our",),
    "see": ("sea",),
    "week": ("weak",),
    "wait": ("weight",),
    "red": ("read",),
    "blue": ("blew",),
    "light": ("lite",),
    "lights": ("lites",),
    "heater": ("heeter",),
    "pause": ("paws",),
    "sale": ("sail",),
}


def tokens(text: str) -> list[str]:
    return text.lower().split()


@dataclass(frozen=True)
class AsrPair:
    """A real recognition: the reference text, what the recognizer heard, and the reference's entity words."""

    ref: str
    """What was said (the reference transcript)."""
    hyp: str
    """What the recognizer heard."""
    names: frozenset[str]
    """Reference words that belong to an entity (names, places)."""


@cache
def load_pairs(split: Literal["fit", "test", "all"] = "all") -> tuple[AsrPair, ...]:
    """The vendored SLURP pairs; ``fit`` (4/5, by SLURP id) calibrates the model, ``test`` (1/5) evaluates it."""
    out = []
    with gzip.open(PAIRS_PATH, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            held_out = row["id"] % 5 == 0
            if split == "all" or (split == "test") == held_out:
                names = frozenset(w for m in _SPAN.finditer(row["ann"].lower()) for w in m.group(2).split())
                out.append(AsrPair(row["ref"], row["hyp"], names))
    return tuple(out)


def word_class(word: str, names: frozenset[str] | set[str]) -> WordClass:
    if word in names:
        return "name"
    return "function" if word in FUNCTION_WORDS else "content"


@dataclass
class ErrorMix:
    """Word error counts of an aligned corpus, overall and per word class of the reference word."""

    ref_words: int = 0
    """Reference words aligned."""
    substitutions: int = 0
    """Reference words the recognizer replaced."""
    deletions: int = 0
    """Reference words it dropped."""
    insertions: int = 0
    """Words it added."""
    utterances: int = 0
    """Utterances aligned."""
    utterances_with_error: int = 0
    """Utterances with at least one word error."""
    class_words: Counter[str] = field(default_factory=Counter)
    """Word class -> reference words of that class."""
    class_errors: Counter[str] = field(default_factory=Counter)
    """Word class -> substituted or deleted words of that class."""
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(reference word, heard word) -> substitutions."""
    inserted: Counter[str] = field(default_factory=Counter)
    """Inserted word -> times inserted."""
    class_subs: Counter[str] = field(default_factory=Counter)
    """Word class -> substitutions."""
    class_dels: Counter[str] = field(default_factory=Counter)
    """Word class -> deletions."""

    @property
    def wer(self) -> float:
        return (self.substitutions + self.deletions + self.insertions) / max(self.ref_words, 1)

    def metrics(self, prefix: str) -> dict[str, float]:
        """Flat metrics: WER, the S/D/I shares of all errors, the error rate per word class, share of names hit."""
        errors = max(self.substitutions + self.deletions + self.insertions, 1)
        out = {
            f"{prefix}wer": self.wer,
            f"{prefix}sub_share": self.substitutions / errors,
            f"{prefix}del_share": self.deletions / errors,
            f"{prefix}ins_share": self.insertions / errors,
            f"{prefix}utterance_error_rate": self.utterances_with_error / max(self.utterances, 1),
        }
        for c in WORD_CLASSES:
            out[f"{prefix}{c}_word_error_rate"] = self.class_errors[c] / max(self.class_words[c], 1)
        return out


def align(refs: Sequence[str], hyps: Sequence[str], names: Sequence[frozenset[str]]) -> ErrorMix:
    """Align each reference with its hypothesis (jiwer, word level) and count errors by type and word class."""
    mix = ErrorMix()
    keep = [i for i, r in enumerate(refs) if r.strip()]
    if not keep:
        return mix
    out = jiwer.process_words([refs[i] for i in keep], [hyps[i] if hyps[i].strip() else "<empty>" for i in keep])
    for k, chunks in enumerate(out.alignments):
        ref_w, hyp_w, nm = out.references[k], out.hypotheses[k], names[keep[k]]
        if hyp_w == ["<empty>"]:
            hyp_w = []
            chunks = [jiwer.AlignmentChunk("delete", 0, len(ref_w), 0, 0)]
        mix.utterances += 1
        mix.ref_words += len(ref_w)
        for w in ref_w:
            mix.class_words[word_class(w, nm)] += 1
        had_error = False
        for ch in chunks:
            if ch.type == "equal":
                continue
            had_error = True
            if ch.type == "insert":
                mix.insertions += ch.hyp_end_idx - ch.hyp_start_idx
                mix.inserted.update(hyp_w[ch.hyp_start_idx : ch.hyp_end_idx])
                continue
            for j in range(ch.ref_start_idx, ch.ref_end_idx):
                c = word_class(ref_w[j], nm)
                mix.class_errors[c] += 1
                if ch.type == "delete":
                    mix.deletions += 1
                    mix.class_dels[c] += 1
                else:
                    mix.substitutions += 1
                    mix.class_subs[c] += 1
                    mix.confusions[(ref_w[j], hyp_w[ch.hyp_start_idx + j - ch.ref_start_idx])] += 1
        mix.utterances_with_error += had_error
    return mix


@dataclass(frozen=True)
class Calibration:
    """Per-word-class error probabilities and the confusion/insertion tables, measured on real pairs."""

    sub: dict[str, float]
    """Word class -> P(substitution) of one of its words."""
    dele: dict[str, float]
    """Word class -> P(deletion)."""
    ins: float
    """P(an inserted word) per reference word."""
    inserted: tuple[tuple[str, ...], tuple[float, ...]]
    """The most inserted words and their weights."""
    confusions: dict[str, tuple[tuple[str, ...], tuple[int, ...]]]
    """Reference word -> the words heard for it and how often."""
    vocabulary: frozenset[str]
    """Words the real recognizer produced: in-vocabulary words err less."""

    @classmethod
    def from_pairs(cls, pairs: Sequence[AsrPair]) -> Calibration:
        mix = align([p.ref for p in pairs], [p.hyp for p in pairs], [p.names for p in pairs])
        conf: dict[str, Counter[str]] = defaultdict(Counter)
        for (ref, hyp), n in mix.confusions.items():
            if _WORD.match(hyp):
                conf[ref][hyp] += n
        inserted = Counter({w: n for w, n in mix.inserted.items() if _WORD.match(w)})
        words, counts = zip(*inserted.most_common(40), strict=True)
        total = sum(counts)
        cum = tuple(accumulate(c / total for c in counts))
        seen = Counter(w for p in pairs for w in (*tokens(p.ref), *tokens(p.hyp)) if _WORD.match(w))
        vocab = frozenset(w for w, n in seen.items() if n >= 2)  # a recognizer knows the words it hears often
        return cls(
            sub={c: mix.class_subs[c] / max(mix.class_words[c], 1) for c in WORD_CLASSES},
            dele={c: mix.class_dels[c] / max(mix.class_words[c], 1) for c in WORD_CLASSES},
            ins=mix.insertions / max(mix.ref_words, 1),
            inserted=(tuple(words), cum),
            confusions={
                w: (tuple(h for h, _ in c.most_common(5)), tuple(n for _, n in c.most_common(5)))
                for w, c in conf.items()
            },
            vocabulary=vocab,
        )


@cache
def default_calibration(rounds: int = 3) -> Calibration:
    """Rates measured on the fit split, then corrected a few times so that the *model's* output on the same
    references reproduces them (the measured rates alone undershoot: capping, words without confusions)."""
    pairs = load_pairs("fit")
    real = align([p.ref for p in pairs], [p.hyp for p in pairs], [p.names for p in pairs])
    cal = Calibration.from_pairs(pairs)
    for _ in range(rounds):
        model = AsrModel(calibration=cal)
        rng = random.Random(0)
        hyps = [model.transcribe(p.ref, rng, names=p.names).text for p in pairs]
        sim = align([p.ref for p in pairs], hyps, [p.names for p in pairs])
        cal = replace(
            cal,
            sub={c: cal.sub[c] * _ratio(real.class_subs[c], sim.class_subs[c]) for c in WORD_CLASSES},
            dele={c: cal.dele[c] * _ratio(real.class_dels[c], sim.class_dels[c]) for c in WORD_CLASSES},
            ins=cal.ins * _ratio(real.insertions, sim.insertions),
        )
    return cal


def _ratio(real: int, simulated: int) -> float:
    return min(max(real / max(simulated, 1), 0.5), 2.0)


@dataclass(frozen=True)
class AsrConfig:
    """``rate`` scales every calibrated error probability (1.0 = the real SLURP recognizer, ~19 % WER)."""

    rate: float = 1.0
    """Scale of every calibrated error probability: 1.0 is the real SLURP recognizer, 0 a perfect one."""
    oov_factor: float = 1.6
    """Words outside the recognizer's vocabulary (rare names) err this much more often."""
    systematic: float = 0.8
    """Probability mass of a word's single most likely confusion among its phonetic ones."""
    max_word_error: float = 0.9
    """Cap on P(a word is substituted or deleted)."""
    oov_name_floor: float = 0.0
    """Least P(substitution) of an unknown name whatever ``rate`` says: no recognizer spells an unheard town."""
    burstiness: float = 0.6
    """Gamma shape of each utterance's error scale (mean 1): small gives many clean, a few very noisy utterances."""


@dataclass(frozen=True)
class AsrResult:
    text: str
    """What the simulated recognizer heard."""
    confidence: float
    """Its confidence, lower with more errors (0..1)."""
    errors: int
    """Word errors made."""


def _difficulty(word: str) -> float:
    """A stable per-word factor in [0.3, 2.0]: some names are simply hard to hear, every day, for everyone."""
    u = (zlib.crc32(word.encode()) % 10_000) / 10_000
    return 0.3 + 1.7 * u * u


class AsrModel:
    """``transcribe(text, rng)`` -> what a recognizer calibrated on SLURP would have heard, with a confidence."""

    def __init__(
        self,
        config: AsrConfig = AsrConfig(),
        *,
        vocabulary: Iterable[str] = (),
        calibration: Calibration | None = None,
    ) -> None:
        self.config = config
        self.cal = calibration or default_calibration()
        self.vocabulary = sorted(self.cal.vocabulary | {w.lower() for v in vocabulary for w in v.split()})
        self._in_vocab = frozenset(self.vocabulary)
        self._codes = [jellyfish.metaphone(w) or w for w in self.vocabulary]
        self._neighbours: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {}
        self._p: dict[tuple[str, bool], tuple[float, float]] = {}

    def probabilities(self, word: str, is_name: bool) -> tuple[float, float]:
        """(P(substitute), P(delete)) for one spoken word."""
        key = (word, is_name)
        p = self._p.get(key)
        if p is None:
            c = "name" if is_name else word_class(word, frozenset())
            scale = self.config.rate
            if c != "function":
                scale *= _difficulty(word) * (1.0 if word in self._in_vocab else self.config.oov_factor)
            sub = min(self.cal.sub[c] * scale, self.config.max_word_error)
            if is_name and word not in self._in_vocab:
                sub = max(sub, self.config.oov_name_floor)
            dele = min(self.cal.dele[c] * self.config.rate, self.config.max_word_error - sub)
            p = self._p[key] = (sub, dele)
        return p

    def neighbours(self, word: str) -> tuple[tuple[str, ...], tuple[float, ...]]:
        """The words ``word`` is misheard as, with cumulative probabilities: real confusions, homophones, then
        phonetic neighbours from the vocabulary (the top one carries ``systematic`` of the mass)."""
        hit = self._neighbours.get(word)
        if hit is not None:
            return hit
        weights: dict[str, float] = defaultdict(float)
        real = self.cal.confusions.get(word)
        if real:
            total = sum(real[1])
            for w, n in zip(*real, strict=True):
                weights[w] += n / total
        for w in HOMOPHONES.get(word, ()):
            weights[w] += 0.5
        if not weights:
            code = jellyfish.metaphone(word) or word
            # candidates that sound alike (metaphone codes) or are spelled alike, then ranked on both
            by_sound = process.extract(code, self._codes, scorer=fuzz.ratio, limit=40)
            by_spelling = process.extract(word, self.vocabulary, scorer=fuzz.ratio, limit=20)
            found = [(None, fuzz.ratio(code, self._codes[i]), i) for i in {i for _, _, i in (*by_sound, *by_spelling)}]
            ranked = sorted(
                (
                    (
                        0.6 * s
                        + 0.4 * fuzz.ratio(word, self.vocabulary[i])
                        - 2.0 * abs(len(word) - len(self.vocabulary[i]))
                        + 5.0 * (word[0] == self.vocabulary[i][0]),
                        self.vocabulary[i],
                    )
                    for _, s, i in found
                    if self.vocabulary[i] != word and len(self.vocabulary[i]) > 1
                ),
                reverse=True,
            )
            rest = (1 - self.config.systematic) / 2
            for (_, w), m in zip(ranked[:3], (self.config.systematic, rest, rest), strict=False):
                weights[w] += m
        if not weights:
            hit = ((), ())
        else:
            items = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))
            mass = math.fsum(v for _, v in items)
            hit = (tuple(w for w, _ in items), tuple(accumulate(v / mass for _, v in items)))
        self._neighbours[word] = hit
        return hit

    def transcribe(
        self, text: str, rng: random.Random, *, names: frozenset[str] | set[str] = frozenset(), clarity: float = 1.0
    ) -> AsrResult:
        """Recognize ``text``. ``names`` are the words treated as entity names; ``clarity`` < 1 lowers every error
        probability (a user repeating slowly after a failure)."""
        out: list[str] = []
        damage = 0.0
        errors = 0
        k = self.config.burstiness
        level = clarity * rng.gammavariate(k, 1.0 / k)
        ins_p = self.cal.ins * self.config.rate * level
        ins_words, ins_cum = self.cal.inserted
        words = tokens(text)
        for word in words:
            if rng.random() < ins_p:
                out.append(ins_words[min(bisect.bisect(ins_cum, rng.random() * ins_cum[-1]), len(ins_words) - 1)])
                damage += 0.3
                errors += 1
            is_name = word in names
            sub, dele = self.probabilities(word, is_name)
            u = rng.random()
            if u < sub * level:
                targets, cum = self.neighbours(word)
                if targets:
                    out.append(targets[min(bisect.bisect(cum, rng.random() * cum[-1]), len(targets) - 1)])
                    damage += 1.0 if is_name or word not in FUNCTION_WORDS else 0.4
                    errors += 1
                    continue
                out.append(word)
            elif u < (sub + dele) * level:
                damage += 0.5 if word in FUNCTION_WORDS else 0.9
                errors += 1
            else:
                out.append(word)
        z = 3.2 - 7.0 * damage / max(len(words), 1) - 0.6 * (errors > 0) + rng.gauss(0.0, 1.4)
        return AsrResult(" ".join(out), round(1.0 / (1.0 + math.exp(-z)), 4), errors)


def confidence_auc(confidences: Sequence[float], erroneous: Sequence[bool]) -> float:
    """P(conf of a correct recognition > conf of an erroneous one): how well confidence flags errors (0.5 = not)."""
    pos = sorted(c for c, e in zip(confidences, erroneous, strict=True) if not e)
    neg = [c for c, e in zip(confidences, erroneous, strict=True) if e]
    if not pos or not neg:
        return 0.5
    wins = 0.0
    for c in neg:
        lo, hi = bisect.bisect_left(pos, c), bisect.bisect_right(pos, c)
        wins += lo + 0.5 * (hi - lo)
    return 1.0 - wins / (len(pos) * len(neg))

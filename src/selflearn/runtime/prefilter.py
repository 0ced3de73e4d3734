"""An indexed version of hassil's required-fragment prefilter, so that ``recognize`` only sees templates that can match.

hassil checks every sentence template's required literal fragments (``Sentence.get_required_clauses``) against the
input on every call, after building match settings (merged slot lists and expansion rules) for every intent block:
more than half of a call's cost with ~900 templates, although an utterance can match only a handful. Here the
same clauses are indexed once per compiled template set: an utterance's candidate templates come from a set
intersection, and hassil gets a copy of the templates holding only those. A template is dropped only when hassil's
own prefilter would drop it (fragments never contain whitespace, so "fragment in haystack" is "fragment is a
substring of a haystack word"), and order is kept, so ``recognize``/``recognize_all`` give exactly the same results.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from dataclasses import replace

from hassil import Intents
from hassil.expression import Sentence
from hassil.intents import Intent, IntentData
from hassil.util import normalize_for_matching, remove_skip_words_tracked

CACHE_SIZE = 4096  # pruned template sets remembered by their kept templates (utterances share them)

_Slot = tuple[str, int, int]  # (intent name, block index, sentence index)


class Prefilter:
    """Prunes one compiled template set to the templates whose required fragments an utterance contains."""

    def __init__(self, intents: Intents) -> None:
        self.intents = intents
        self.enabled = not intents.settings.ignore_whitespace  # CJK mode joins words; not indexed
        self.slots: list[_Slot] = []
        self.clauses: list[tuple[frozenset[str], ...]] = []
        self.always: list[int] = []  # templates without usable required fragments
        self.by_key: dict[str, list[int]] = {}
        frequency: dict[str, int] = {}
        for intent in intents.intents.values():
            for b, block in enumerate(intent.data):
                rules = {**intents.expansion_rules, **block.expansion_rules}
                for s, sentence in enumerate(block.sentences):
                    clauses = tuple(sentence.get_required_clauses(rules))
                    if any(not c or any(f.split() != [f] for f in c) for c in clauses):
                        clauses = ()  # unexpected shape: never pruned
                    self.slots.append((intent.name, b, s))
                    self.clauses.append(clauses)
                    for f in {f for c in clauses for f in c}:
                        frequency[f] = frequency.get(f, 0) + 1
        for i, clauses in enumerate(self.clauses):
            if not clauses:
                self.always.append(i)
                continue
            key = min(clauses, key=lambda c: sum(frequency[f] for f in c))  # the most selective clause
            for f in key:
                self.by_key.setdefault(f, []).append(i)
        self.max_len = max((len(f) for f in frequency), default=0)
        self._cache: dict[tuple[int, ...], Intents] = {}
        self._lock = threading.Lock()  # the service interprets on several threads

    def candidates(self, text: str) -> list[int]:
        """Indexes (into ``slots``) of the templates hassil's prefilter would keep for ``text``, in order."""
        words = _haystack_words(text, self.intents)
        pieces = {w[i:j] for w in words for i in range(len(w)) for j in range(i + 1, min(len(w), i + self.max_len) + 1)}
        found = set(self.always)
        for f in pieces.intersection(self.by_key):
            found.update(self.by_key[f])
        return sorted(i for i in found if all(not pieces.isdisjoint(c) for c in self.clauses[i]))

    def prune(self, text: str) -> Intents:
        """The template set holding only ``text``'s candidate templates (the full set when not indexable)."""
        if not self.enabled:
            return self.intents
        kept = tuple(self.candidates(text))
        hit = self._cache.get(kept)
        if hit is None:
            hit = self._build(kept)
            with self._lock:
                if len(self._cache) >= CACHE_SIZE:
                    del self._cache[next(iter(self._cache))]
                self._cache[kept] = hit
        return hit

    def _build(self, kept: Iterable[int]) -> Intents:
        blocks: dict[str, dict[int, list[Sentence]]] = {}
        for i in kept:
            name, b, s = self.slots[i]
            blocks.setdefault(name, {}).setdefault(b, []).append(self.intents.intents[name].data[b].sentences[s])
        pruned = {
            name: Intent(name, [_with_sentences(self.intents.intents[name].data[b], ss) for b, ss in by_block.items()])
            for name, by_block in blocks.items()
        }
        return replace(self.intents, intents=pruned)


def _with_sentences(block: IntentData, sentences: list[Sentence]) -> IntentData:
    """A shallow copy of a block with some of its (already parsed and ordered) sentences."""
    pruned = copy.copy(block)
    pruned.__dict__["sentences"] = sentences  # ``sentences`` is a cached_property: preset it
    return pruned


def _haystack_words(text: str, intents: Intents) -> set[str]:
    """The words of hassil's prefilter haystack: the normalised text with and without skip words, casefolded."""
    tracked = normalize_for_matching(text)
    words = set(tracked.text.casefold().split())
    if intents.skip_words:
        no_skip = tracked.copy()
        remove_skip_words_tracked(no_skip, intents.skip_words, intents.settings.ignore_whitespace)
        words.update(no_skip.text.casefold().split())
    return words

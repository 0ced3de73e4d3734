from __future__ import annotations

from typing import Any

import yaml
from hassil import RecognizeResult, recognize_all

from selflearn.eval.suites import peer_ha
from selflearn.home import shipped_homes
from selflearn.runtime.nlu import COMPETING, NLU, compiled, prefilter

MAPLE = next(h for h in shipped_homes() if h.id == "maple_house")
UTTERANCES = [
    "turn on the kitchen light",
    "please turn off the desk lamp for me",
    "could you play the movie hunger games",
    "what's the weather in wilkerson",
    "preheat the oven to 200 degrees",
    "set a timer for 5 minutes",
    "i want to hear some jazz",
    "start the the coffee machine",
    "make me a sandwich",
    "",
    "Turn ON the Living-Room lights, please!",
]


def _all(text: str, intents: Any, nlu: NLU, context: dict[str, Any] | None) -> list[tuple[Any, ...]]:
    results: list[RecognizeResult] = list(
        recognize_all(text, intents, slot_lists=nlu.slot_lists, intent_context=context, language="en")
    )
    return [
        (
            r.intent.name,
            r.intent_sentence.text if r.intent_sentence else None,
            [(e.name, repr(e.value), e.text, e.text_span) for e in r.entities_list],
        )
        for r in results
    ]


def test_pruned_templates_give_exactly_hassils_results() -> None:
    nlu = NLU.for_home(MAPLE)
    fixtures = yaml.safe_load((peer_ha.TESTS_DIR / "_fixtures.yaml").read_text(encoding="utf-8"))
    ha = NLU(peer_ha.fixture_slot_lists(fixtures))
    cases = [(u, nlu, {"area": "kitchen"}) for u in UTTERANCES]
    cases += [(s.text, ha, s.context or None) for s in list(peer_ha.sentences())[::7]]
    matched = 0
    for text, parser, context in cases:
        want = _all(text, compiled(), parser, context)
        assert _all(text, prefilter().prune(text), parser, context) == want, text
        matched += bool(want)
    assert matched > len(cases) // 2
    for group in COMPETING:
        for text, parser, context in cases[:40]:
            assert _all(text, prefilter(group).prune(text), parser, context) == _all(
                text, prefilter(group).intents, parser, context
            )


def test_an_utterance_keeps_only_a_few_templates() -> None:
    index = prefilter()
    kept = index.candidates("turn on the kitchen light")
    assert 0 < len(kept) < len(index.slots) // 5
    assert {index.slots[i][0] for i in kept} >= {"HassTurnOn"}
    assert prefilter().prune("turn on the kitchen light") is prefilter().prune("turn on the kitchen light")

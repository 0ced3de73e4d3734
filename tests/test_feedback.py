from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from selflearn.home import Endpoint, Home, shipped_homes
from selflearn.runtime.feedback import FeedbackAnswer, FeedbackPolicy, FeedbackRewriter, PendingRewrites, parse_answer
from selflearn.runtime.rewrites import Rewrite

NOW = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "asked", "expected"),
    [
        ("yes", True, FeedbackAnswer("yes")),
        ("Yes, thank you!", True, FeedbackAnswer("yes")),
        ("you did", True, FeedbackAnswer("yes")),
        ("no", True, FeedbackAnswer("no")),
        ("Not really.", True, FeedbackAnswer("no")),
        ("No, I meant turn on the kitchen light", True, FeedbackAnswer("correction", "turn on the kitchen light")),
        ("no turn on the kitchen light", True, FeedbackAnswer("correction", "turn on the kitchen light")),
        ("I meant the warriors game", False, FeedbackAnswer("correction", "the warriors game")),
        ("yes", False, None),
        ("no", False, None),
        ("turn on the tv", True, None),
    ],
)
def test_parse_answer(text: str, asked: bool, expected: FeedbackAnswer | None) -> None:
    assert parse_answer(text, asked=asked) == expected


def test_policy_asks_only_when_unsure_and_rate_limits_per_user() -> None:
    policy = FeedbackPolicy(every_turns=5, min_interval=timedelta(hours=1), max_confidence=0.6)
    assert not policy.should_ask(user_id="a", now=NOW, confidence=0.9, rewritten=False)
    assert policy.should_ask(user_id="a", now=NOW, confidence=0.3, rewritten=False)
    assert policy.take_pending("a") and not policy.take_pending("a")
    asks = [
        policy.should_ask(user_id="a", now=NOW + timedelta(minutes=i), confidence=0.1, rewritten=True)
        for i in range(1, 30)
    ]
    assert not any(asks)  # 29 more unsure turns within the hour: no second question
    assert policy.should_ask(user_id="b", now=NOW, confidence=0.1, rewritten=False)  # others are not affected
    later = NOW + timedelta(hours=2)
    assert policy.should_ask(user_id="a", now=later, confidence=0.9, rewritten=True)
    for i in range(5):
        assert not policy.should_ask(user_id="a", now=later + timedelta(hours=2 + i), confidence=0.1, rewritten=True)
    assert policy.should_ask(user_id="a", now=later + timedelta(hours=9), confidence=0.1, rewritten=True)


def test_policy_never_asks_more_than_once_per_n_turns() -> None:
    policy = FeedbackPolicy(every_turns=20, min_interval=timedelta(0))
    asked = sum(
        policy.should_ask(user_id="a", now=NOW + timedelta(minutes=i), confidence=0.0, rewritten=True)
        for i in range(1000)
    )
    assert asked == 48  # the first unsure turn, then every 21st


def test_pending_rewrites_persist_reload_and_forget(tmp_path: Path) -> None:
    pending = PendingRewrites(tmp_path)
    pending.add("maple.ana", "Switch on the cooking light!", "turn on the kitchen light", NOW)
    pending.add("maple.ben", "play the game", "put the lakers game on", NOW)
    reloaded = PendingRewrites(tmp_path)
    hit = reloaded.get("maple.ana", "switch on the cooking light")
    assert hit is not None and hit.target == "turn on the kitchen light"
    assert reloaded.get("maple.ben", "switch on the cooking light") is None
    assert (tmp_path / "personal" / "maple.ana" / "feedback_rewrites.jsonl").exists()
    assert reloaded.forget("maple.ana") == 1
    assert not (tmp_path / "personal" / "maple.ana").exists()
    assert PendingRewrites(tmp_path).all("maple.ana") == [] and len(PendingRewrites(tmp_path).all("maple.ben")) == 1


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", ".hidden", ""])
def test_pending_rewrites_refuse_ids_that_are_not_a_folder_name(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        PendingRewrites(tmp_path).add(bad, "a", "b", NOW)


class _Inner:
    def rewrite(self, text: str, *, user_id: str, home: Home, endpoint: Endpoint, now: datetime) -> Rewrite | None:
        return Rewrite(text="learned", source="personal", score=0.7)


def test_feedback_rewriter_puts_corrections_before_the_learned_rewriter() -> None:
    home = next(h for h in shipped_homes() if h.id == "maple_house")
    endpoint = home.endpoints[0]
    pending = PendingRewrites()
    pending.add("maple.ana", "play the game", "put the warriors game on", NOW)
    rewriter = FeedbackRewriter(pending, _Inner())
    mine = rewriter.rewrite("Play the game", user_id="maple.ana", home=home, endpoint=endpoint, now=NOW)
    assert mine == Rewrite(text="put the warriors game on", source="feedback", score=1.0)
    theirs = rewriter.rewrite("play the game", user_id="maple.ben", home=home, endpoint=endpoint, now=NOW)
    assert theirs is not None and theirs.source == "personal"
    assert FeedbackRewriter(pending).rewrite("x", user_id="maple.ana", home=home, endpoint=endpoint, now=NOW) is None

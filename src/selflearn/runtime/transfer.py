"""Rule transfer: a learned source->target token edit applied to a new utterance, where it has a place in it.

A rule learned on "turn on the kitten light" -> "turn on the kitchen light" also repairs "turn off the kitten
light"; ``edit_anchors`` lets a layer skip encoding a query that could take none of its edits, and ``flips`` keeps a
rewrite from turning what was asked into its opposite.
"""

from __future__ import annotations

import itertools

from selflearn.runtime.patterns import token_edits


def transfer(query: str, source: str, target: str) -> str | None:
    """Apply the token edit source->target to ``query`` (all forms normalised); None if an edit has no place in it.

    Replacements and deletions need the source span in the query (deleting a repeated word also the repetition:
    "what what time is it" -> "what time is it" must not cut "what time is" to "time is"), insertions both
    neighbouring source tokens. An edit at the start (end) of the source applies only at the start (end) of the
    query: "is the weather" -> "what's the weather" must not turn "what is the weather" into "what what's the
    weather". The edits must sit in the query in the source's order, and an edit that moves words (inserts what
    another deletes) only where the words between them are the source's: "set the brightness the _area_ to
    _number_" -> "set the _area_ brightness to _number_" must not turn "set the brightness in the _area_ ..." into
    "set the _area_ brightness in ...". A word the edit doubles ("play some music" with "play music" -> "play some
    soul") is said once.
    """
    if query == source:
        return target
    q, s, t = query.split(), source.split(), target.split()
    placed: list[tuple[int, int, int, int, list[str]]] = []  # (query start, query end, source i1, i2, new tokens)
    for tag, i1, i2, j1, j2 in token_edits(source, target):
        new = t[j1:j2]
        if tag == "insert":
            if i1 == len(s):
                pos = len(q) if q[-1:] == s[-1:] else None
            elif i1 == 0:
                pos = 0 if q[:1] == s[:1] else None
            else:
                at = _find(q, s[i1 - 1 : i1 + 1])
                pos = None if at is None else at + 1
            if pos is None:
                return None
            if q[pos : pos + len(new)] == new or q[max(pos - len(new), 0) : pos] == new:
                continue  # already said
            placed.append((pos, pos, i1, i2, new))
        else:
            at = _find(q, s[i1:i2], start=i1 == 0, end=i2 == len(s))
            if at is None:
                return None
            end, n = at + i2 - i1, i2 - i1
            repeat = s[i1:i2] in (s[i2 : i2 + n], s[max(i1 - n, 0) : i1])
            if tag == "delete" and repeat and s[i1:i2] not in (q[end : end + n], q[max(at - n, 0) : at]):
                return None
            placed.append((at, end, i1, i2, new))
    moved = {w for _, _, _, _, new in placed for w in new} & {w for _, _, i1, i2, _ in placed for w in s[i1:i2]}
    for (_, end, _, i2, _), (at, _, i1, _, _) in itertools.pairwise(placed):
        if at < end or (moved and q[end:at] != s[i2:i1]):
            return None
    for at, end, _, _, new in reversed(placed):
        q = q[:at] + new + q[end:]
    said = set(zip(query.split(), query.split()[1:], strict=False))
    return " ".join(w for i, w in enumerate(q) if i == 0 or w != q[i - 1] or (w, w) in said)


def edit_anchors(source: str, target: str) -> set[str]:
    """Source tokens a query must contain for the rule's edit to have a place in it (see ``transfer``): the replaced
    or deleted tokens, or an inserted span's neighbours. A query with none of a layer's anchors skips encoding."""
    s = source.split()
    anchors: set[str] = set()
    for tag, i1, i2, _, _ in token_edits(source, target):
        if tag in ("replace", "delete"):
            anchors.update(s[i1:i2])
        elif tag == "insert":
            anchors.update(s[max(i1 - 1, 0) : i1 + 1])
    return anchors


def _find(tokens: list[str], span: list[str], *, start: bool = False, end: bool = False) -> int | None:
    """First position of ``span`` in ``tokens``; ``start``/``end``: only at the very start/end."""
    n = len(span)
    if start and end:
        return 0 if tokens == span else None
    if start:
        return 0 if tokens[:n] == span else None
    if end:
        return len(tokens) - n if n <= len(tokens) and tokens[len(tokens) - n :] == span else None
    for i in range(len(tokens) - n + 1):
        if tokens[i : i + n] == span:
            return i
    return None


FILLER = frozenset({"please", "now", "the", "a", "an", "um", "uh", "hey", "just", "can", "could", "you", "would"})
OPPOSITES = (("on", "off"), ("open", "close"), ("up", "down"), ("lock", "unlock"), ("start", "stop"))


def flips(query: str, text: str) -> bool:
    """Would the rewrite turn what was asked into its opposite ("turn off the lights" -> "turn on ...")? Such a rule
    comes from a person doing one thing and then the other, not from a repair; it is never applied."""
    said, sent = set(query.split()), set(text.split())
    for a, b in OPPOSITES:
        if (a in said and b not in said and b in sent and a not in sent) or (
            b in said and a not in said and a in sent and b not in sent
        ):
            return True
    return False

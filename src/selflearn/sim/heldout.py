"""The evaluation-only SLURP texts no simulated person may say, and how people steer around them.

Odd-id SLURP devel sentences and both sides of the ASR pairs measure how the assistant copes with real wordings;
if a simulated person ever said one, learners would meet the test in training. The vendoring script stores only
hashes of their normalised forms (``data/slurp/heldout_forms.txt``), so the simulator can check a wording against
them without holding them as wordings. A hand-written or rendered wording that happens to equal one ("play music",
"turn off the porch light") is said with a polite tail instead; a recognition that happens to land on one is
heard correctly instead (the spoken text is allowed by then).
"""

from __future__ import annotations

import hashlib
from functools import cache

from selflearn import paths
from selflearn.text import normalize

HELDOUT_PATH = paths.PACKAGE_DATA / "slurp" / "heldout_forms.txt"
# Ways to say the same thing that no held-out form starts or ends with often; tried in order (no randomness, so a
# steered wording does not shift the simulation's random stream).
_VARIANTS = ("{} please", "please {}", "could you {}", "{} now please", "um {} please")


def form_hash(form: str) -> str:
    """A short stable hash of a normalised form (what ``heldout_forms.txt`` lists)."""
    return hashlib.blake2b(form.encode("utf-8"), digest_size=8).hexdigest()


@cache
def heldout_hashes() -> frozenset[str]:
    return frozenset(HELDOUT_PATH.read_text(encoding="utf-8").split())


def is_heldout(text: str) -> bool:
    """Whether ``text`` (any spelling) is an evaluation-only text."""
    return form_hash(normalize(text)) in heldout_hashes()


def avoid(text: str) -> str:
    """``text``, or the first polite variant of it that is not an evaluation-only text."""
    if not is_heldout(text):
        return text
    for variant in _VARIANTS:
        said = variant.format(text)
        if not is_heldout(said):
            return said
    raise ValueError(f"no variant of {text!r} avoids the held-out SLURP texts")

"""Parse a judge's answer to a batch of n excerpts into n verdicts, and read P(yes) from logprobs.

Accepted answers, tried in order: a JSON-style list (`[1, 0, 1]`, `[true, false]`, `["yes","no"]`);
numbered lines (`1: yes`, `2) 0`); exactly n bare verdicts (`1 0 1`, `yes, no, yes`). A list of the
wrong length, or anything else, is unparsed: the scorer counts those excerpts as unparsed, never as
a guess.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from sae_interp.clients.base import TokenLogprob

__all__ = ["answer_probabilities", "parse_verdicts"]

_YES = {"1", "yes", "true", "y"}
_NO = {"0", "no", "false", "n"}
_LIST = re.compile(r"\[([^\[\]]*)\]")
_NUMBERED = re.compile(r"^\W*(\d+)\s*[:.)\-]\s*\W*(yes|no|true|false|1|0)\b", re.IGNORECASE | re.MULTILINE)
_BARE = re.compile(r"\b(yes|no|true|false|1|0)\b", re.IGNORECASE)


def _verdict(item: str) -> bool | None:
    word = item.strip().strip("\"'").lower()
    return True if word in _YES else False if word in _NO else None


def parse_verdicts(text: str, n: int) -> list[bool] | None:
    """n verdicts (True = yes) from `text`, or None when the answer does not give exactly n."""
    for match in _LIST.finditer(text):
        items = [_verdict(item) for item in match[1].split(",") if item.strip()]
        if len(items) == n and all(v is not None for v in items):
            return [bool(v) for v in items]
    numbered = {int(m[1]): _verdict(m[2]) for m in _NUMBERED.finditer(text)}
    if numbered:  # numbered lines that miss an excerpt: their numbers must not pass as verdicts
        return [bool(numbered[i]) for i in range(1, n + 1)] if set(numbered) == set(range(1, n + 1)) else None
    bare = [_verdict(m[1]) for m in _BARE.finditer(text)]
    if len(bare) == n:
        return [bool(v) for v in bare]
    return None


def answer_probabilities(logprobs: Sequence[TokenLogprob] | None, n: int) -> list[float] | None:
    """P(yes) for each of the n verdicts, from the top logprobs of the answer's verdict tokens.

    The answer's tokens that are a verdict (0/1/yes/no/...) are taken in order; when there are
    exactly n, each one's P(yes) is the yes-mass over the yes+no mass among its alternatives
    (including the chosen token). Otherwise None: probabilities are never guessed.
    """
    if not logprobs:
        return None
    verdicts = [t for t in logprobs if _verdict(t.token) is not None]
    if len(verdicts) != n:
        return None
    probs = []
    for tok in verdicts:
        alternatives = {alt.token: alt.logprob for alt in tok.top_logprobs}
        alternatives.setdefault(tok.token, tok.logprob)
        yes = sum(math.exp(lp) for t, lp in alternatives.items() if _verdict(t) is True)
        no = sum(math.exp(lp) for t, lp in alternatives.items() if _verdict(t) is False)
        probs.append(yes / (yes + no) if yes + no > 0 else float(bool(_verdict(tok.token))))
    return probs

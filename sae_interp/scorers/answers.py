"""Parse a judge's answer into per-item values, and read answer distributions from logprobs.

A batch answer gives n items: verdicts (classifier scorers: 0/1, yes/no) or activation levels
(simulation: integers 0-10). Accepted answers, tried in order: a JSON-style list (`[1, 0, 1]`,
`[true, false]`, `["yes","no"]`); numbered lines (`1: yes`, `2) 0`); exactly n bare items (`1 0 1`,
`yes, no, yes`). A list of the wrong length, or anything else, is unparsed: the scorer counts those
items as unparsed, never as a guess. A choice answer (intruder) names one number out of 1..n.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from sae_interp.clients.base import TokenLogprob

__all__ = [
    "answer_distributions",
    "answer_probabilities",
    "expected_levels",
    "parse_choice",
    "parse_levels",
    "parse_verdicts",
]

T = TypeVar("T")

_YES = {"1", "yes", "true", "y"}
_NO = {"0", "no", "false", "n"}
_LIST = re.compile(r"\[([^\[\]]*)\]")
_VERDICT_WORD = r"yes|no|true|false|1|0"
_LEVEL_WORD = r"(?<![-.])(?:10|[0-9])(?!\.\d)"  # "-1" and "0.5" hold digits but are not levels
MAX_LEVEL = 10
"""Simulated activations run from 0 (silent) to this (the latent's max)."""


def _verdict(item: str) -> bool | None:
    word = item.strip().strip("\"'").lower()
    return True if word in _YES else False if word in _NO else None


def _level(item: str) -> int | None:
    word = item.strip().strip("\"'")
    return int(word) if word.isdigit() and int(word) <= MAX_LEVEL else None


def _parse_items(text: str, n: int, convert: Callable[[str], T | None], word: str) -> list[T] | None:
    """n items from `text` (list, then numbered lines, then bare words matching `word`), or None."""
    for match in _LIST.finditer(text):
        items = [convert(item) for item in match[1].split(",") if item.strip()]
        if len(items) == n and all(v is not None for v in items):
            return [v for v in items if v is not None]
    numbered_re = re.compile(rf"^\W*(\d+)\s*[:.)\-]\s*\W*({word})\b", re.IGNORECASE | re.MULTILINE)
    numbered = {int(m[1]): convert(m[2]) for m in numbered_re.finditer(text)}
    if numbered:  # numbered lines that miss an item: their numbers must not pass as items
        if set(numbered) != set(range(1, n + 1)):
            return None
        values = [numbered[i] for i in range(1, n + 1)]
        return [v for v in values if v is not None] if all(v is not None for v in values) else None
    bare = [convert(m[1]) for m in re.finditer(rf"\b({word})\b", text, re.IGNORECASE)]
    if len(bare) == n and all(v is not None for v in bare):
        return [v for v in bare if v is not None]
    return None


def parse_verdicts(text: str, n: int) -> list[bool] | None:
    """n verdicts (True = yes) from `text`, or None when the answer does not give exactly n."""
    return _parse_items(text, n, _verdict, _VERDICT_WORD)


def parse_levels(text: str, n: int) -> list[int] | None:
    """n activation levels (integers 0-10) from `text`, or None when it does not give exactly n."""
    return _parse_items(text, n, _level, _LEVEL_WORD)


def parse_choice(text: str, n: int) -> int | None:
    """The one number in 1..n that `text` names ("3", "Excerpt 3."), or None (none, or several)."""
    named = {int(m[0]) for m in re.finditer(r"\b\d+\b", text)} & set(range(1, n + 1))
    return named.pop() if len(named) == 1 else None


def answer_distributions(
    logprobs: Sequence[TokenLogprob] | None, n: int, convert: Callable[[str], T | None]
) -> list[dict[T, float]] | None:
    """For each of the n answer items, the probability of each value, from top logprobs.

    The answer's tokens that `convert` reads as an item are taken in order; when there are exactly
    n, each one's distribution is the mass of every value among its alternatives (including the
    chosen token), normalised over the values found. Otherwise None: never guessed.
    """
    if not logprobs:
        return None
    items = [t for t in logprobs if convert(t.token) is not None]
    if len(items) != n:
        return None
    out: list[dict[T, float]] = []
    for tok in items:
        alternatives = {alt.token: alt.logprob for alt in tok.top_logprobs}
        alternatives.setdefault(tok.token, tok.logprob)
        mass: dict[T, float] = {}
        for token, logprob in alternatives.items():
            value = convert(token)
            if value is not None:
                mass[value] = mass.get(value, 0.0) + math.exp(logprob)
        total = sum(mass.values())
        chosen = convert(tok.token)
        assert chosen is not None  # filtered above
        out.append({v: m / total for v, m in mass.items()} if total > 0 else {chosen: 1.0})
    return out


def answer_probabilities(logprobs: Sequence[TokenLogprob] | None, n: int) -> list[float] | None:
    """P(yes) for each of the n verdicts: yes-mass over yes+no mass (see `answer_distributions`)."""
    dists = answer_distributions(logprobs, n, _verdict)
    return None if dists is None else [d.get(True, 0.0) for d in dists]


def expected_levels(logprobs: Sequence[TokenLogprob] | None, n: int) -> list[float] | None:
    """The probability-weighted mean level (0-10) of each of the n answer items, or None."""
    dists = answer_distributions(logprobs, n, _level)
    return None if dists is None else [sum(v * p for v, p in d.items()) for d in dists]

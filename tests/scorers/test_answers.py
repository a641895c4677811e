"""Judge answers: lists, numbered lines, bare verdicts; wrong lengths and garbage are unparsed."""

from __future__ import annotations

import math

import pytest

from sae_interp.clients.base import TokenLogprob, TopLogprob
from sae_interp.scorers.answers import answer_probabilities, parse_verdicts


@pytest.mark.parametrize(
    ("text", "n", "expected"),
    [
        ("[1, 0, 1]", 3, [True, False, True]),
        ("Sure! Here it is: [true, false]", 2, [True, False]),
        ('["yes", "no", "No"]', 3, [True, False, False]),
        ("[0,1] wait, actually [1, 1, 0]", 3, [True, True, False]),
        ("1: yes\n2: no\n3) 1", 3, [True, False, True]),
        ("1 0 1 1", 4, [True, False, True, True]),
        ("yes, no", 2, [True, False]),
    ],
)
def test_parses(text: str, n: int, expected: list[bool]) -> None:
    assert parse_verdicts(text, n) == expected


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("[1, 0]", 3),
        ("", 2),
        ("maybe?", 1),
        ("[1, 2, 0]", 3),
        ("1: yes\n3: no", 3),
        ("{'a': 1}", 2),
        ("\x00\xff", 1),
    ],
)
def test_unparseable_answers_give_none(text: str, n: int) -> None:
    assert parse_verdicts(text, n) is None


def _tok(token: str, p_yes: float) -> TokenLogprob:
    chosen = "1" if p_yes >= 0.5 else "0"
    return TokenLogprob(
        token=token if token in "[], " else chosen,
        logprob=math.log(max(p_yes, 1 - p_yes)),
        top_logprobs=(TopLogprob("1", math.log(p_yes)), TopLogprob("0", math.log(1 - p_yes))),
    )


def test_probabilities_come_from_the_verdict_tokens_in_order() -> None:
    tokens = (
        TokenLogprob(token="[", logprob=0.0),
        _tok("1", 0.8),
        TokenLogprob(token=",", logprob=0.0),
        _tok("0", 0.3),
    )
    probs = answer_probabilities(tokens, 2)
    assert probs is not None and probs == pytest.approx([0.8, 0.3])


def test_probabilities_are_none_when_the_count_differs() -> None:
    assert answer_probabilities((_tok("1", 0.9),), 2) is None
    assert answer_probabilities(None, 1) is None

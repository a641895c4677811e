"""Explanation parsing: the marker convention, free text, and loud failures."""

from __future__ import annotations

import pytest

from sae_interp.explainers import ExplanationParseError, parse_explanation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The tokens are cities.\n[EXPLANATION]: City names in travel text.", "City names in travel text."),
        ("[EXPLANATION]: first\nthinking more...\n[EXPLANATION]: second", "second"),
        ("**Explanation:** Words about weddings.", "Words about weddings."),
        ("explanation: the word 'piano'", "the word 'piano'"),
        ("[EXPLANATION]:\n\n  Mentions of rivers.  ", "Mentions of rivers."),
        ('  "Dates written as numbers."\nMore text.', "Dates written as numbers."),
        (" the token London in news text", "the token London in news text"),
        ("Example 11:  [EXPLANATION]: Customer segments.", "Customer segments."),
    ],
)
def test_parses(raw: str, expected: str) -> None:
    assert parse_explanation(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "   \n ", "[EXPLANATION]:", "***", "I'm sorry, I can't help with that.", "Example 1: foo"]
)
def test_unusable_answers_raise_with_the_raw_text(raw: str) -> None:
    with pytest.raises(ExplanationParseError) as info:
        parse_explanation(raw)
    assert info.value.raw == raw


def test_long_explanations_are_cut_at_a_word() -> None:
    text = parse_explanation("[EXPLANATION]: " + "word " * 200)
    assert len(text) <= 404 and text.endswith("word...")

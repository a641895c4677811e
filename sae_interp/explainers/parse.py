"""Turn an LLM's answer into one explanation sentence, or fail loudly with the raw text.

Accepted, in this order:
1. the `[EXPLANATION]:` convention (the last such line wins, since models sometimes restate the
   instruction before answering), also written `Explanation:` or `**Explanation:**` at the start of
   a line; the bracketed marker counts anywhere in a line, since small models often continue the
   examples and only then answer ("Example 11: [EXPLANATION]: ...");
2. free text: the first non-empty line that is not a heading, with quotes and Markdown emphasis
   removed.
An answer with nothing usable (empty, only the marker, a refusal to answer) raises
`ExplanationParseError` carrying the raw text: never a placeholder string posing as an explanation.
"""

from __future__ import annotations

import re

__all__ = ["MAX_EXPLANATION_CHARS", "ExplanationParseError", "parse_explanation"]

MAX_EXPLANATION_CHARS = 400
"""Longer "explanations" are cut here (at a word boundary): scorers put them into every prompt."""

_MARKER = re.compile(r"^\W*\[?\s*explanation\s*\]?\s*\**\s*:\s*\**\s*(?P<rest>.*)$", re.IGNORECASE)
_INLINE_MARKER = re.compile(r"\[\s*explanation\s*\]\s*\**\s*:\s*\**\s*(?P<rest>.*)$", re.IGNORECASE)
_NOT_AN_ANSWER = re.compile(
    r"^(i'?m sorry|i cannot|i can'?t|as an ai|sorry\b)|^(example|excerpt)s?\s*\d*\s*:", re.IGNORECASE
)
_STRIP = " \t`*_>#-"
_QUOTES = ('"', "'", "\u201c\u201d")


class ExplanationParseError(ValueError):
    """The answer held no usable explanation; `raw` is the full answer."""

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(f"{message}; the answer was {raw[:200]!r}")
        self.raw = raw


def parse_explanation(raw: str) -> str:
    """The explanation in `raw` (see the module docstring for what is accepted).

    Raises:
        ExplanationParseError: nothing usable in `raw`.
    """
    lines = [line.strip() for line in raw.strip().splitlines()]
    for i in range(len(lines) - 1, -1, -1):
        match = _MARKER.match(lines[i]) or _INLINE_MARKER.search(lines[i])
        if match:
            # "[EXPLANATION]:" alone on its line: the explanation is on the next non-empty line.
            rest = match["rest"] or next((line for line in lines[i + 1 :] if line), "")
            return _clean(rest, raw)
    first = next((line for line in lines if line.strip(_STRIP)), "")
    return _clean(first, raw)


def _clean(text: str, raw: str) -> str:
    text = text.strip(_STRIP).strip()
    for quote in _QUOTES:  # a quoted answer loses its quotes; a quote inside it stays
        if len(text) >= 2 and text[0] == quote[0] and text[-1] == quote[-1]:
            text = text[1:-1].strip()
    if len(text) < 2 or not any(c.isalnum() for c in text):
        raise ExplanationParseError("no explanation found", raw)
    if _NOT_AN_ANSWER.match(text):
        raise ExplanationParseError("the answer is not an explanation", raw)
    if len(text) > MAX_EXPLANATION_CHARS:
        text = text[:MAX_EXPLANATION_CHARS].rsplit(" ", 1)[0] + "..."
    return text

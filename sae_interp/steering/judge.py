"""Behaviour and coherence of steered text rated by a judge LLM, as SAE-TS evaluates steering.

Any `LLMClient` judges (a vLLM or OpenAI-compatible server, OpenRouter, the embedded model): each
continuation of a sweep cell is rated 1-10 for the behaviour and 1-10 for coherence, in two
separate questions (one rating per answer parses far more reliably than two). Ratings are mapped
to [0, 1] by `(r - 1) / 9`; a cell's judged score is mean behaviour x mean coherence, the product
the paper maximises over scales. Unparsable answers and failed calls leave that rating out (and
are counted), so one bad reply never sinks a cell or the sweep.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence

from sae_interp.clients import ClientError, LLMClient, SamplingParams
from sae_interp.scorers.answers import parse_choice
from sae_interp.scorers.classifier import ask_judge
from sae_interp.steering.evaluate import BEHAVIOURS, SweepRow

__all__ = ["BEHAVIOUR_QUESTION", "COHERENCE_QUESTION", "judge_sweep"]

logger = logging.getLogger(__name__)

BEHAVIOUR_QUESTION = (
    "Here is a short text written by a language model:\n\n<text>\n{text}\n</text>\n\n"
    "On a scale from 1 to 10, how much is this text about {topic}? 1 means not at all, 10 means "
    "entirely. Answer with the number in square brackets, e.g. [4]."
)
COHERENCE_QUESTION = (
    "Here is a short text written by a language model:\n\n<text>\n{text}\n</text>\n\n"
    "On a scale from 1 to 10, how fluent and coherent is this text? 1 means gibberish, 10 means "
    "as natural as text a person would write. Answer with the number in square brackets, e.g. [4]."
)
_PARAMS = SamplingParams(max_tokens=8, temperature=0.0)


async def _rate(client: LLMClient, question: str) -> float | None:
    """One 1-10 rating mapped to [0, 1], or None when the call fails or the answer has no rating."""
    try:
        answer, _ = await ask_judge(client, [{"role": "user", "content": question}], _PARAMS)
    except ClientError as err:
        logger.warning("judge call failed: %s", err)
        return None
    level = parse_choice(answer, 10)
    return None if level is None else (level - 1) / 9


def _mean(values: Sequence[float | None]) -> float | None:
    rated = [v for v in values if v is not None]
    return sum(rated) / len(rated) if rated else None


async def judge_sweep(client: LLMClient, rows: Sequence[SweepRow]) -> list[SweepRow]:
    """Rows with `judge_behaviour`, `judge_coherence` and `judge_score` filled from `client`.

    Every rating request is sent at once; the client bounds its own concurrency.
    """

    async def judge_row(row: SweepRow) -> SweepRow:
        topic = BEHAVIOURS[row.behaviour].topic
        behaviour = [_rate(client, BEHAVIOUR_QUESTION.format(text=t, topic=topic)) for t in row.texts]
        coherence = [_rate(client, COHERENCE_QUESTION.format(text=t)) for t in row.texts]
        ratings = await asyncio.gather(*behaviour, *coherence)
        b, c = _mean(ratings[: len(row.texts)]), _mean(ratings[len(row.texts) :])
        missing = sum(r is None for r in ratings)
        if missing:
            logger.warning(
                "%s %s x%g: %d of %d ratings missing",
                row.behaviour,
                row.method,
                row.scale,
                missing,
                len(ratings),
            )
        score = None if b is None or c is None else b * c
        return dataclasses.replace(row, judge_behaviour=b, judge_coherence=c, judge_score=score)

    return list(await asyncio.gather(*(judge_row(r) for r in rows)))

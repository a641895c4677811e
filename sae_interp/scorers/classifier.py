"""Classifier scorers: an LLM judges batches of excerpts against an explanation.

Each scorer builds `Sample`s (text shown, truth, group) from a latent's examples; they are shuffled
(seeded by latent), cut into batches of `batch_size` (the last may be shorter) and all batches are
sent concurrently (the client's semaphore bounds requests in flight). Answers are parsed per batch;
a batch whose answer cannot be parsed counts its excerpts as unparsed. A client error (after its
retries) fails the scorer, and so the latent: a failed request is not a verdict.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from sae_interp.clients.base import Generation, LLMClient, Message, SamplingParams
from sae_interp.clients.errors import UnsupportedRequest
from sae_interp.explainers.explainer import Explained
from sae_interp.results import LatentExamples, ScoreOut
from sae_interp.scorers.answers import answer_probabilities, parse_verdicts
from sae_interp.scorers.config import ScorerConfig, scorer_rng
from sae_interp.scorers.metrics import Judgement, binary_metrics, metrics_by_group
from sae_interp.scorers.prompts import ClassifierPrompt

__all__ = ["ClassifierScorer", "Sample", "ask_judge", "judge_params"]

_TOP_LOGPROBS = 5


@dataclass(frozen=True)
class Sample:
    """One excerpt to judge."""

    text: str
    """As shown in the prompt (one line)."""
    truth: bool
    group: str
    """Quantile ("1" = strongest), or a negative kind ("non_activating", "mismarked")."""
    source: str
    """Which example list it came from and its index there, e.g. "test[3]"."""


class ClassifierScorer:
    """Base of detection and fuzzing: subclasses set `name` and `prompt` and build the samples."""

    name: str
    prompt: ClassifierPrompt

    def __init__(self, client: LLMClient, cfg: ScorerConfig | None = None) -> None:
        self.client = client
        self.cfg = cfg or ScorerConfig()
        # The answer is "[1, 0, ...]": ~3 tokens per excerpt, plus slack for a stray word.
        self.params = judge_params(
            client, self.cfg, max_tokens=8 + 4 * self.cfg.batch_size, top=_TOP_LOGPROBS
        )

    def samples(self, latent: LatentExamples) -> list[Sample]:
        raise NotImplementedError

    async def __call__(self, explained: Explained) -> ScoreOut:
        latent = explained.latent
        samples = self.samples(latent)
        if not samples:
            raise ValueError(f"{self.name}: latent {latent.key} has no examples to score")
        order = scorer_rng(self.cfg.seed, self.name, latent.key).permutation(len(samples))
        shuffled = [samples[i] for i in order]
        size = self.cfg.batch_size
        batches = [shuffled[i : i + size] for i in range(0, len(shuffled), size)]
        answers = await asyncio.gather(*(self._judge(explained.explanation.text, b) for b in batches))
        judgements = [j for batch in answers for j, _ in batch]
        records = [
            {"source": s.source, "group": s.group, "truth": j.truth, "prediction": j.prediction,
             "probability": j.probability, "answer": raw}
            for batch, judged in zip(batches, answers, strict=True)
            for s, (j, raw) in zip(batch, judged, strict=True)
        ]  # fmt: skip
        metrics = binary_metrics(judgements)
        return ScoreOut(
            scorer=self.name,
            prompt_version=self.prompt.version,
            score=metrics["balanced_accuracy"],
            metrics=metrics,
            by_quantile=metrics_by_group(judgements),
            n_unparsed=int(metrics["n_unparsed"] or 0),
            samples=records,
        )

    def messages(self, explanation: str, batch: Sequence[Sample]) -> list[Message]:
        excerpts = "\n".join(f"{i}. {s.text}" for i, s in enumerate(batch, 1))
        user = f"Explanation: {explanation}\n\nExcerpts:\n{excerpts}"
        return [{"role": "system", "content": self.prompt.system}, {"role": "user", "content": user}]

    async def _judge(self, explanation: str, batch: Sequence[Sample]) -> list[tuple[Judgement, str]]:
        text, generation = await ask_judge(self.client, self.messages(explanation, batch), self.params)
        verdicts = parse_verdicts(text, len(batch))
        probs = answer_probabilities(generation.logprobs, len(batch)) if verdicts is not None else None
        return [
            (
                Judgement(
                    truth=s.truth,
                    prediction=None if verdicts is None else verdicts[i],
                    probability=None if probs is None else probs[i],
                    group=s.group,
                ),
                text,
            )
            for i, s in enumerate(batch)
        ]


async def ask_judge(
    client: LLMClient,
    messages: Sequence[Message],
    params: SamplingParams,
    *,
    opening: str = "[",
    closing: str = "]",
) -> tuple[str, Generation]:
    """Ask `messages` as a chat, or, for a base model, as one completion prompt.

    A base model completes an opened answer ("Answer: [") far more reliably than it follows a chat,
    so its prompt is the messages joined, then "Answer: " + `opening`, stopped at `closing`.

    Returns:
        The answer text (for a base model, `opening` + continuation + `closing`) and the generation.
    """
    if client.capabilities.chat_tuned:
        generation = await client.chat(messages, params)
        return generation.text, generation
    prompt = "\n\n".join(m["content"] for m in messages) + "\n\nAnswer: " + opening
    generation = await client.complete(prompt, dataclasses.replace(params, stop=(closing,)))
    return opening + generation.text + closing, generation


def judge_params(client: LLMClient, cfg: ScorerConfig, *, max_tokens: int, top: int) -> SamplingParams:
    """Greedy settings for a judge's answer, with logprobs as `cfg.logprobs` and the client allow.

    Args:
        max_tokens: the answer's budget.
        top: alternatives per answer token wanted (capped by what the client returns).

    Raises:
        UnsupportedRequest: `cfg.logprobs` is "on" but the client returns no logprobs.
    """
    caps = client.capabilities
    if cfg.logprobs == "on" and not caps.logprobs:
        raise UnsupportedRequest(f"scorers.logprobs='on' but {client!r} returns no logprobs")
    use_logprobs = cfg.logprobs != "off" and caps.logprobs
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=0.0,
        logprobs=use_logprobs,
        top_logprobs=min(top, caps.max_top_logprobs) if use_logprobs else 0,
    )

"""Surprisal: does knowing the explanation make the latent's activating texts easier to predict?

A local language model reads each example's text twice, once after a prefix holding the explanation
and once after the same prefix without it (`prompts.SURPRISAL`). The example's improvement is the
mean log-probability of its tokens with the explanation minus without it. A good explanation helps
on activating texts (the held-out test examples) more than on non-activating ones, so the score is
the AUC of the improvement separating the two (0.5 = no help). No judge answer is parsed: the model's
own likelihoods are the measurement, which makes this scorer a check on the LLM judges.

It needs prompt logprobs (the `Local` client has them; vLLM's server has them as an extension that
the OpenAI API lacks), and raises `UnsupportedRequest` when built with a client without them.
"""

from __future__ import annotations

import asyncio

import numpy as np

from sae_interp.clients.base import LLMClient, SamplingParams, TokenLogprob
from sae_interp.clients.errors import BadResponse, UnsupportedRequest
from sae_interp.explainers.explainer import Explained
from sae_interp.results import ExampleOut, ScoreOut
from sae_interp.scorers.config import ScorerConfig
from sae_interp.scorers.metrics import auc_by_quantile, roc_auc
from sae_interp.scorers.prompts import SURPRISAL, SurprisalPrompt

__all__ = ["SurprisalScorer", "text_logprobs"]

# One generated token is the least a completion call produces; only the prompt's logprobs are used.
_PARAMS = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1)


def text_logprobs(prompt_logprobs: tuple[TokenLogprob | None, ...], text: str) -> list[float]:
    """The logprobs of the prompt tokens that cover `text`, the end of the prompt.

    Tokens are counted back from the end until their decoded pieces cover `len(text)` characters, so
    a token that merges the prefix's last characters with the text's first is included (it carries
    the text's start). A multi-byte character split across tokens may shift the count by a token.

    Raises:
        BadResponse: the prompt logprobs end before they cover `text`.
    """
    covered, out = 0, []
    for entry in reversed(prompt_logprobs):
        if covered >= len(text):
            break
        if entry is None:
            raise BadResponse(f"surprisal: prompt logprobs stop after {covered} of {len(text)} characters")
        covered += len(entry.token)
        out.append(entry.logprob)
    if covered < len(text):
        raise BadResponse(f"surprisal: prompt logprobs cover {covered} of {len(text)} characters")
    return out[::-1]


class SurprisalScorer:
    """AUC of the per-example log-likelihood gain from the explanation; the client must be local."""

    name = "surprisal"
    prompt: SurprisalPrompt = SURPRISAL

    def __init__(self, client: LLMClient, cfg: ScorerConfig | None = None) -> None:
        """Check that `client` returns prompt logprobs.

        Raises:
            UnsupportedRequest: it does not.
        """
        if not client.capabilities.prompt_logprobs:
            raise UnsupportedRequest(
                f"the surprisal scorer needs prompt logprobs, which {client!r} does not return; "
                'use the local client ([client] kind = "local") or drop "surprisal" from scorers.names'
            )
        self.client = client
        self.cfg = cfg or ScorerConfig()

    async def mean_logprob(self, prefix: str, text: str) -> float:
        """Mean log-probability of `text`'s tokens after `prefix`."""
        generation = await self.client.complete(prefix + text, _PARAMS)
        if generation.prompt_logprobs is None:
            raise BadResponse(f"surprisal: {self.client!r} returned no prompt logprobs")
        return float(np.mean(text_logprobs(generation.prompt_logprobs, text)))

    async def __call__(self, explained: Explained) -> ScoreOut:
        latent = explained.latent
        positives = latent.test[: self.cfg.n_test]
        negatives = latent.non_activating[: self.cfg.n_non_activating]
        if not positives or not negatives:
            raise ValueError(f"surprisal: latent {latent.key} needs activating and non-activating examples")
        examples: list[ExampleOut] = [*positives, *negatives]
        prefix = self.prompt.explained.format(explanation=explained.explanation.text)
        with_explanation, neutral = await asyncio.gather(
            asyncio.gather(*(self.mean_logprob(prefix, ex.text) for ex in examples)),
            asyncio.gather(*(self.mean_logprob(self.prompt.neutral, ex.text) for ex in examples)),
        )
        gain = [w - n for w, n in zip(with_explanation, neutral, strict=True)]
        truth = [True] * len(positives) + [False] * len(negatives)
        pos_gain, neg_gain = gain[: len(positives)], gain[len(positives) :]
        auc = roc_auc(truth, gain)
        sources = [f"test[{i}]" for i in range(len(positives))]
        sources += [f"non_activating[{i}]" for i in range(len(negatives))]
        samples: list[dict[str, object]] = [
            {"source": src, "truth": t, "logprob_explained": w, "logprob_neutral": n, "improvement": g}
            for src, t, w, n, g in zip(sources, truth, with_explanation, neutral, gain, strict=True)
        ]
        return ScoreOut(
            scorer=self.name,
            prompt_version=self.prompt.version,
            score=auc,
            metrics={
                "auc": auc,
                "mean_improvement_activating": float(np.mean(pos_gain)),
                "mean_improvement_non_activating": float(np.mean(neg_gain)),
                "n": float(len(examples)),
            },
            by_quantile=auc_by_quantile([ex.quantile for ex in positives], pos_gain, neg_gain),
            samples=samples,
        )

"""Simulation: can a judge predict, token by token, where and how strongly the latent fires?

OpenAI's simulator method: the judge reads the explanation and one excerpt's tokens and predicts
each token's activation on a 0-10 scale; the truth is the latent's activation scaled by its max
activation to 0-10. Excerpts are the held-out activating examples and the non-activating ones, so an
explanation must say where the latent fires and where it stays silent. The headline score is the
Pearson correlation over all tokens of all parsed excerpts; the metrics add the mean per-excerpt
correlation (over excerpts where it is defined: a silent excerpt has constant truth).

With logprobs, a token's prediction is the probability-weighted mean over the levels among the
answer token's alternatives (a graded guess correlates better than its argmax); otherwise the parsed
integer. An answer without exactly one level per token leaves its excerpt unparsed (`n_unparsed`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence

import numpy as np

from sae_interp.clients.base import LLMClient, Message
from sae_interp.explainers.explainer import Explained, show_text
from sae_interp.results import ExampleOut, ScoreOut
from sae_interp.scorers.answers import MAX_LEVEL, expected_levels, parse_levels
from sae_interp.scorers.classifier import ask_judge, judge_params
from sae_interp.scorers.config import ScorerConfig
from sae_interp.scorers.metrics import group_order, pearson
from sae_interp.scorers.prompts import SIMULATION, ClassifierPrompt

__all__ = ["SimulationScorer", "true_levels"]

# Levels 0-10 are 11 tokens: enough alternatives to see most of the mass over them.
_TOP_LOGPROBS = 20


def true_levels(activations: Sequence[float], scale: float) -> list[float]:
    """Activations on the 0-10 scale: `scale` (the latent's max) maps to 10, clipped to [0, 10]."""
    if scale <= 0:
        return [0.0] * len(activations)
    return [MAX_LEVEL * min(max(a, 0.0), scale) / scale for a in activations]


@dataclasses.dataclass(frozen=True)
class _Simulated:
    source: str
    group: str
    truth: list[float]
    prediction: list[float] | None
    answer: str


class SimulationScorer:
    """Correlation of judge-predicted with true per-token activations."""

    name = "simulation"
    prompt: ClassifierPrompt = SIMULATION

    def __init__(self, client: LLMClient, cfg: ScorerConfig | None = None) -> None:
        """Settle the answer's sampling settings (logprobs per `cfg.logprobs`).

        Raises:
            UnsupportedRequest: `cfg.logprobs` is "on" but the client returns no logprobs.
        """
        self.client = client
        self.cfg = cfg or ScorerConfig()
        self.params = judge_params(client, self.cfg, max_tokens=8, top=_TOP_LOGPROBS)

    def messages(self, explanation: str, tokens: Sequence[str]) -> list[Message]:
        """The chat messages asking for one level per token of one excerpt."""
        listing = "\n".join(f"{i}. {json.dumps(t, ensure_ascii=False)}" for i, t in enumerate(tokens, 1))
        user = f"Explanation: {explanation}\n\nExcerpt: {show_text(''.join(tokens))}\n\nTokens:\n{listing}"
        return [{"role": "system", "content": self.prompt.system}, {"role": "user", "content": user}]

    async def simulate(self, explanation: str, tokens: Sequence[str]) -> tuple[list[float] | None, str]:
        """Predicted levels (0-10) for `tokens`, or None when the answer is unparsed; and the answer."""
        # "[0, 10, ...]": ~3 tokens per level, plus slack for a stray word.
        params = dataclasses.replace(self.params, max_tokens=8 + 4 * len(tokens))
        text, generation = await ask_judge(self.client, self.messages(explanation, tokens), params)
        levels = parse_levels(text, len(tokens))
        if levels is None:
            return None, text
        expected = expected_levels(generation.logprobs, len(tokens))
        return (expected if expected is not None else [float(v) for v in levels]), text

    async def __call__(self, explained: Explained) -> ScoreOut:
        latent = explained.latent
        shown: list[tuple[str, str, ExampleOut]] = [
            *((f"test[{i}]", str(ex.quantile), ex) for i, ex in enumerate(latent.test[: self.cfg.n_test])),
            *(
                (f"non_activating[{i}]", "non_activating", ex)
                for i, ex in enumerate(latent.non_activating[: self.cfg.n_non_activating])
            ),
        ]
        if not shown:
            raise ValueError(f"simulation: latent {latent.key} has no examples to score")
        scale = latent.statistics.max or max(ex.max_activation for _, _, ex in shown)
        answers = await asyncio.gather(
            *(self.simulate(explained.explanation.text, ex.tokens) for _, _, ex in shown)
        )
        results = [
            _Simulated(src, group, true_levels(ex.activations, scale), pred, text)
            for (src, group, ex), (pred, text) in zip(shown, answers, strict=True)
        ]
        parsed = [r for r in results if r.prediction is not None]
        per_example = [c for r in parsed if (c := pearson(r.prediction or [], r.truth)) is not None]
        silent = [r for r in parsed if r.group == "non_activating"]
        by_quantile = {
            group: {"correlation": _pooled([*members, *silent]), "n": float(len(members))}
            for group in sorted({r.group for r in parsed if r.group != "non_activating"}, key=group_order)
            if (members := [r for r in parsed if r.group == group])
        }
        correlation = _pooled(parsed)
        return ScoreOut(
            scorer=self.name,
            prompt_version=self.prompt.version,
            score=correlation,
            metrics={
                "correlation": correlation,
                "mean_example_correlation": float(np.mean(per_example)) if per_example else None,
                "n_examples_correlated": float(len(per_example)),
                "n": float(len(results)),
                "n_tokens": float(sum(len(r.truth) for r in parsed)),
                "n_unparsed": float(len(results) - len(parsed)),
            },
            by_quantile=by_quantile,
            n_unparsed=len(results) - len(parsed),
            samples=[dataclasses.asdict(r) for r in results],
        )


def _pooled(results: Sequence[_Simulated]) -> float | None:
    """Pearson correlation over every token of `results` (all parsed)."""
    predicted = [p for r in results for p in r.prediction or []]
    return pearson(predicted, [t for r in results for t in r.truth])

"""Fuzzing: are the marked tokens the ones the explanation describes?

Activating test examples alternate between correct marks (the tokens above the threshold; truth 1)
and the same number of marks moved to tokens below it (group "mismarked"; truth 0). Non-activating
examples get the same number of marks at random positions (truth 0). So a good explanation must
point at the right tokens, not only at the right texts. Headline score: balanced accuracy.
"""

from __future__ import annotations

import numpy as np

from sae_interp.explainers.explainer import show_text
from sae_interp.explainers.highlight import highlight, marked_positions
from sae_interp.results import ExampleOut, LatentExamples
from sae_interp.scorers.classifier import ClassifierScorer, Sample
from sae_interp.scorers.config import scorer_rng
from sae_interp.scorers.prompts import FUZZING

__all__ = ["FuzzingScorer", "marked_text"]


class FuzzingScorer(ClassifierScorer):
    name = "fuzzing"
    prompt = FUZZING

    def samples(self, latent: LatentExamples) -> list[Sample]:
        rng = scorer_rng(self.cfg.seed, f"{self.name}/marks", latent.key)
        threshold = self.cfg.threshold * latent.statistics.max
        samples: list[Sample] = []
        counts: list[int] = []
        for i, ex in enumerate(latent.test[: self.cfg.n_test]):
            marks = marked_positions(ex.activations, threshold)
            counts.append(max(1, sum(marks)))
            if i % 2 == 0:
                samples.append(Sample(marked_text(ex, marks), True, str(ex.quantile), f"test[{i}]"))
                continue
            wrong = _random_marks(len(marks), sum(marks), np.flatnonzero(~np.asarray(marks)), rng)
            if wrong is not None:
                samples.append(Sample(marked_text(ex, wrong), False, "mismarked", f"test[{i}]"))
        typical = int(np.median(counts)) if counts else 1
        for i, ex in enumerate(latent.non_activating[: self.cfg.n_non_activating]):
            wrong = _random_marks(len(ex.tokens), typical, np.arange(len(ex.tokens)), rng)
            if wrong is not None:
                samples.append(
                    Sample(marked_text(ex, wrong), False, "non_activating", f"non_activating[{i}]")
                )
        return samples


def marked_text(ex: ExampleOut, marks: list[bool]) -> str:
    """`ex` as one prompt line with the `marks` tokens wrapped in <<...>>."""
    return show_text(highlight(ex.tokens, marks))


def _random_marks(length: int, k: int, allowed: np.ndarray, rng: np.random.Generator) -> list[bool] | None:
    """Marks on `max(k, 1)` positions drawn from `allowed`; None when there are too few."""
    k = max(k, 1)
    if len(allowed) < k:
        return None
    chosen = set(rng.choice(allowed, size=k, replace=False).tolist())
    return [i in chosen for i in range(length)]

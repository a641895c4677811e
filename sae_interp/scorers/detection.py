"""Detection: does the latent fire anywhere in this excerpt, judging from the explanation alone?

Positives are the held-out activating test examples (grouped by quantile), negatives the
non-activating examples (random windows, or windows where a neighbouring latent fires: harder).
Headline score: balanced accuracy.
"""

from __future__ import annotations

from sae_interp.explainers.explainer import show_text
from sae_interp.results import LatentExamples
from sae_interp.scorers.classifier import ClassifierScorer, Sample
from sae_interp.scorers.prompts import DETECTION

__all__ = ["DetectionScorer"]


class DetectionScorer(ClassifierScorer):
    name = "detection"
    prompt = DETECTION

    def samples(self, latent: LatentExamples) -> list[Sample]:
        positives = [
            Sample(show_text(ex.text), True, str(ex.quantile), f"test[{i}]")
            for i, ex in enumerate(latent.test[: self.cfg.n_test])
        ]
        negatives = [
            Sample(show_text(ex.text), False, "non_activating", f"non_activating[{i}]")
            for i, ex in enumerate(latent.non_activating[: self.cfg.n_non_activating])
        ]
        return positives + negatives

"""The embedding scorer on the real packaged MiniLM: a right explanation beats an unrelated one."""

from __future__ import annotations

import pytest

from sae_interp.explainers import Explained
from sae_interp.results import ExampleOut, ExplanationOut, LatentExamples, LatentStatistics
from sae_interp.scorers import EmbeddingScorer, ScorerConfig

COOKING = [
    "Stir the onions in butter until golden, then add the garlic.",
    "Bake the bread at 220 degrees for thirty minutes.",
    "Season the soup with salt, pepper and fresh thyme.",
    "Whisk the eggs with sugar before folding in the flour.",
    "Simmer the tomato sauce slowly and taste it often.",
    "Roast the chicken with lemon and rosemary.",
]
OTHER = [
    "The train to Berlin leaves from platform nine.",
    "Parliament voted on the new tax law yesterday.",
    "The striker scored twice in the second half.",
    "Install the package and restart the server.",
    "Clouds gathered over the mountains before the storm.",
    "The museum opens at nine on weekdays.",
]


def _examples(sentences: list[str], active: bool) -> list[ExampleOut]:
    out = []
    for i, s in enumerate(sentences):
        words = [w if j == 0 else " " + w for j, w in enumerate(s.split())]
        acts = [3.0 if active and j == 1 else 0.0 for j in range(len(words))]
        out.append(ExampleOut(tokens=words, activations=acts, kind="activating" if active else "random",
                              quantile=1 + i % 2 if active else None, row=i, start=0))  # fmt: skip
    return out


LATENT = LatentExamples(
    key="h/0", hookpoint="h", latent=0,
    statistics=LatentStatistics(count=6, frequency=0.1, max=3.0, mean=3.0, hist=[6], hist_edges=[0.0, 3.0]),
    train=[], test=_examples(COOKING, True), non_activating=_examples(OTHER, False),
)  # fmt: skip


def _explained(text: str) -> Explained:
    return Explained(LATENT, ExplanationOut(text=text, explainer="x", prompt_version="x", raw=text))


@pytest.fixture(scope="module")
def scorer() -> EmbeddingScorer:
    return EmbeddingScorer(ScorerConfig())


async def test_right_explanation_beats_unrelated_one(scorer: EmbeddingScorer) -> None:
    right = await scorer(_explained("cooking instructions and recipes"))
    wrong = await scorer(_explained("sports results and football matches"))
    assert right.score is not None and wrong.score is not None
    assert right.score >= 0.9 and wrong.score < 0.6 and right.score > wrong.score
    assert set(right.by_quantile) == {"1", "2"}
    assert right.metrics["mean_similarity_activating"] > right.metrics["mean_similarity_non_activating"]
    assert len(right.samples) == 12


async def test_needs_both_classes(scorer: EmbeddingScorer) -> None:
    empty = LATENT.model_copy(update={"non_activating": []})
    with pytest.raises(ValueError, match="needs activating and non-activating"):
        await scorer(Explained(empty, _explained("x").explanation))

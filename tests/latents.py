"""Constructed latents with a known meaning, for explainer and scorer tests.

Latent i fires on one keyword (KEYWORDS[i]) and nowhere else, so "the word <keyword>" is a perfect
explanation of it and another latent's keyword is a wrong one.
"""

from __future__ import annotations

import numpy as np

from sae_interp.results import ExampleOut, LatentExamples, LatentStatistics, latent_key

KEYWORDS = [
    "wedding", "London", "piano", "volcano", "cheese", "rocket", "guitar", "tiger", "winter", "coffee",
    "castle", "river", "doctor", "soccer", "diamond", "pirate", "garden", "thunder", "violin", "desert",
]  # fmt: skip
FILLER = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "with",
    "as",
    "at",
    "by",
    "from",
    "that",
    "this",
    "it",
    "were",
    "be",
    "are",
    "had",
    "his",
    "her",
    "they",
    "we",
    "you",
    "which",
    "their",
    "there",
    "about",
    "after",
    "before",
    "over",
    "under",
    "between",
    "into",
    "through",
    "during",
    "without",
    "morning",
    "people",
    "table",
    "window",
    "paper",
    "story",
    "water",
    "light",
    "house",
    "street",
    "music",
    "letter",
    "number",
]
HOOKPOINT = "blocks.1.hook_resid_pre"


def _tokens(rng: np.random.Generator, n: int) -> list[str]:
    return [" " + w for w in rng.choice(FILLER, size=n)]


def example(
    rng: np.random.Generator, keyword: str | None, *, quantile: int | None = None, length: int = 12
) -> ExampleOut:
    """A window of filler words; with `keyword`, it sits at a random position with activation > 0."""
    tokens = _tokens(rng, length)
    acts = [0.0] * length
    if keyword is not None:
        pos = int(rng.integers(1, length - 1))
        tokens[pos] = " " + keyword
        acts[pos] = float(rng.uniform(2.0, 8.0))
    return ExampleOut(
        tokens=tokens,
        activations=acts,
        kind="activating" if keyword else "random",
        quantile=quantile,
        row=int(rng.integers(0, 1000)),
        start=0,
    )


def make_latent(
    latent: int, *, n_train: int = 6, n_test: int = 10, n_non: int = 10, seed: int = 0
) -> LatentExamples:
    """Latent `latent` of HOOKPOINT, firing on KEYWORDS[latent]; test examples over 5 quantiles."""
    rng = np.random.default_rng(seed * 1000 + latent)
    word = KEYWORDS[latent]
    train = [example(rng, word, quantile=1 + i % 5) for i in range(n_train)]
    test = [example(rng, word, quantile=1 + i % 5) for i in range(n_test)]
    non = [example(rng, None) for _ in range(n_non)]
    return LatentExamples(
        key=latent_key(HOOKPOINT, latent),
        hookpoint=HOOKPOINT,
        latent=latent,
        statistics=LatentStatistics(
            count=n_train + n_test,
            frequency=0.01,
            max=8.0,
            mean=5.0,
            hist=[0, 3, 5],
            hist_edges=[0.0, 1.0, 4.0, 8.0],
        ),
        train=train,
        test=test,
        non_activating=non,
    )

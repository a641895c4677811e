"""Explainer prompts are exact on a hand-built record (golden strings written here by hand)."""

from __future__ import annotations

import pytest

from sae_interp.config import ConfigError
from sae_interp.explainers import (
    ContrastiveExplainer,
    DefaultExplainer,
    ExplainerConfig,
    ExplanationParseError,
    TopTokensExplainer,
    highlight,
)
from sae_interp.explainers.highlight import activation_listing
from sae_interp.explainers.prompts import CONTRASTIVE, DEFAULT
from sae_interp.results import ExampleOut, LatentExamples, LatentStatistics


def _ex(
    tokens: list[str], acts: list[float], kind: str = "activating", quantile: int | None = 1
) -> ExampleOut:
    return ExampleOut(tokens=tokens, activations=acts, kind=kind, quantile=quantile, row=0, start=0)  # type: ignore[arg-type]


LATENT = LatentExamples(
    key="blocks.3.hook_resid_pre/7",
    hookpoint="blocks.3.hook_resid_pre",
    latent=7,
    statistics=LatentStatistics(count=3, frequency=0.1, max=10.0, mean=5.0, hist=[1], hist_edges=[0.0, 10.0]),
    train=[
        _ex(["I", " love", " New", " York", "\n", "ok"], [0.0, 1.0, 9.0, 10.0, 0.0, 0.0]),
        _ex(["Paris", " is", " big"], [6.0, 0.0, 2.9]),
    ],
    test=[],
    non_activating=[
        _ex(["no", " city"], [0.0, 0.0], kind="random", quantile=None),
        _ex(["a", " town"], [0.0, 0.0], kind="neighbour", quantile=None),
    ],
)


def test_highlight_merges_consecutive_marks() -> None:
    assert highlight(["a", "b", "c", "d"], [True, True, False, True]) == "<<ab>>c<<d>>"
    assert highlight([], []) == ""
    with pytest.raises(ValueError, match="2 tokens but 1 marks"):
        highlight(["a", "b"], [True])


def test_activation_listing_scales_to_ten() -> None:
    assert activation_listing(["a", " b", "c"], [10.0, 4.4, 0.2], 10.0) == "('a', 10), (' b', 4)"


def test_default_chat_prompt_is_exact() -> None:
    messages = DefaultExplainer(client=None, cfg=ExplainerConfig(style="chat", threshold=0.3)).messages(
        LATENT
    )  # type: ignore[arg-type]
    assert messages == [
        {"role": "system", "content": DEFAULT.system},
        {
            "role": "user",
            "content": "Example 1: I love<< New York>>\\nok\nExample 2: <<Paris>> is big\n\n"
            "That was the last example. What do the marked tokens have in common? End your answer "
            "with the line [EXPLANATION]: <one sentence>",
        },
    ]
    assert DEFAULT.system.endswith("[EXPLANATION]: <your one-sentence explanation>")


def test_activation_values_are_listed_when_asked() -> None:
    cfg = ExplainerConfig(style="chat", show_activations=True, max_examples=1)
    user = DefaultExplainer(client=None, cfg=cfg).messages(LATENT)[1]["content"]  # type: ignore[arg-type]
    assert user == (
        "Example 1: I love<< New York>>\\nok\nActivations: (' love', 1), (' New', 9), (' York', 10)\n\n"
        + DEFAULT.chat_closing
    )


def test_contrastive_adds_silent_examples_neighbours_first() -> None:
    explainer = ContrastiveExplainer(client=None, cfg=ExplainerConfig(kind="contrastive", style="chat"))  # type: ignore[arg-type]
    user = explainer.messages(LATENT)[1]["content"]
    assert user == (
        "Example 1: I love<< New York>>\\nok\nExample 2: <<Paris>> is big\n\n"
        "Excerpts where the latent is not active:\nExample 1: a town\nExample 2: no city\n\n"
        + CONTRASTIVE.chat_closing
    )
    assert explainer.messages(LATENT)[0]["content"] == CONTRASTIVE.system


def test_completion_prompt_ends_with_the_marker() -> None:
    prompt = DefaultExplainer(client=None, cfg=ExplainerConfig(style="completion")).completion_prompt(LATENT)  # type: ignore[arg-type]
    assert prompt == (
        DEFAULT.completion_intro
        + "\n\nExample 1: I love<< New York>>\\nok\nExample 2: <<Paris>> is big\n\n"
        + "[EXPLANATION]: The marked tokens are"
    )


@pytest.mark.parametrize(
    ("field", "value"), [("kind", "fancy"), ("style", "poem"), ("threshold", 1.5), ("max_tokens", 0)]
)
def test_bad_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"explainer.{field}"):
        ExplainerConfig(**{field: value})  # type: ignore[arg-type]


async def test_top_tokens_explainer_names_the_most_marked_tokens() -> None:
    explained = await TopTokensExplainer(None, ExplainerConfig(kind="top_tokens", n_top_tokens=2))(LATENT)
    assert explained.explanation.text == 'the tokens "New", "York"'  # ties keep reading order
    assert explained.explanation.explainer == "top_tokens" and explained.latent is LATENT
    blank = LATENT.model_copy(update={"train": [_ex(["\n", " "], [10.0, 9.0])]})
    with pytest.raises(ExplanationParseError, match="no marked token"):
        await TopTokensExplainer(None)(blank)

"""Simulation: exact prompt, robust level parsing, and the oracle judge's right vs shuffled control."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sae_interp.clients import OpenAICompatible
from sae_interp.clients.base import TokenLogprob, TopLogprob
from sae_interp.explainers import Explained
from sae_interp.results import ExplanationOut, LatentExamples
from sae_interp.scorers import ScorerConfig, SimulationScorer, build_scorers
from sae_interp.scorers.answers import expected_levels, parse_levels
from sae_interp.scorers.simulation import true_levels
from tests.clients.loopback import LoopbackServer, Reply, Respond, chat_body
from tests.latents import KEYWORDS, make_latent
from tests.scorers.oracle import oracle


def _explained(latent: LatentExamples, text: str) -> Explained:
    return Explained(latent, ExplanationOut(text=text, explainer="x", prompt_version="x", raw=""))


def _with_distractors(i: int) -> LatentExamples:
    """Latent i whose non-activating examples hold latent i+1's keyword: a word it does not fire on."""
    latent = make_latent(i)
    other = " " + KEYWORDS[(i + 1) % len(KEYWORDS)]
    rng = np.random.default_rng(i)
    non = []
    for ex in latent.non_activating:
        tokens = list(ex.tokens)
        tokens[int(rng.integers(len(tokens)))] = other
        non.append(ex.model_copy(update={"tokens": tokens}))
    return latent.model_copy(update={"non_activating": non})


def test_prompt_is_formatted_exactly() -> None:
    scorer = SimulationScorer(OpenAICompatible("http://127.0.0.1:9/v1", "m"), ScorerConfig())
    messages = scorer.messages("the word dog", ["The", " big", " dog", "\n", ' "x"'])
    assert messages == [
        {
            "role": "system",
            "content": (
                "You are simulating one latent (a learned feature) of a language model from its "
                "explanation. You get the explanation, a text excerpt, and the excerpt's tokens, numbered, "
                "each as a JSON string. For each token, predict how strongly the latent fires on it, as "
                "the explanation describes it: an integer from 0 (not at all) to 10 (as strongly as it "
                "ever fires). Most tokens are usually 0. Answer with a JSON list of integers, one per "
                "token, in the order given, and nothing else. For example, for five tokens: [0, 0, 8, 0, 1]"
            ),
        },
        {
            "role": "user",
            "content": (
                "Explanation: the word dog\n\n"
                'Excerpt: The big dog\\n "x"\n\n'
                "Tokens:\n"
                '1. "The"\n'
                '2. " big"\n'
                '3. " dog"\n'
                '4. "\\n"\n'
                '5. " \\"x\\""'
            ),
        },
    ]
    assert scorer.prompt.version == "simulation-v1"


@pytest.mark.parametrize(
    ("text", "n", "expected"),
    [
        ("[0, 10, 3]", 3, [0, 10, 3]),
        ("Here: [0,0,7] done", 3, [0, 0, 7]),
        ("1: 0\n2: 10\n3) 4", 3, [0, 10, 4]),
        ("0 0 9", 3, [0, 0, 9]),
        ('["2", "0"]', 2, [2, 0]),
    ],
)
def test_levels_parse(text: str, n: int, expected: list[int]) -> None:
    assert parse_levels(text, n) == expected


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("[0, 10]", 3),  # too few
        ("[0, 10, 0, 0]", 3),  # too many
        ("[0, 11, 0]", 3),  # off the scale
        ("[0, -1, 0]", 3),
        ("[0.5, 1, 2]", 3),
        ("1: 0\n3: 5", 3),  # a numbered line missing
        ("no idea", 2),
        ("", 1),
    ],
)
def test_malformed_levels_are_unparsed(text: str, n: int) -> None:
    assert parse_levels(text, n) is None


def test_expected_levels_weigh_the_level_alternatives() -> None:
    def level(chosen: str, alts: dict[str, float]) -> TokenLogprob:
        top = tuple(TopLogprob(t, math.log(p)) for t, p in alts.items())
        return TokenLogprob(token=chosen, logprob=math.log(alts[chosen]), top_logprobs=top)

    tokens = (
        TokenLogprob(token="[", logprob=0.0),
        level("0", {"0": 0.6, "10": 0.2, " zero": 0.2}),  # a non-level alternative is left out
        TokenLogprob(token=", ", logprob=0.0),
        level("5", {"5": 0.5, "4": 0.25, "6": 0.25}),
    )
    assert expected_levels(tokens, 2) == pytest.approx([2.5, 5.0])
    assert expected_levels(tokens, 3) is None  # a "10" split into "1", "0" would land here
    assert true_levels([0.0, 2.0, 8.0, 9.0], 8.0) == [0.0, 2.5, 10.0, 10.0]


@pytest.mark.parametrize("logprobs", ["auto", "off"])
async def test_oracle_right_explanation_correlates_shuffled_does_not(logprobs: str) -> None:
    async with LoopbackServer(default=Respond(oracle)) as server:
        client = OpenAICompatible(server.base_url, "oracle", max_concurrency=16)
        (scorer,) = build_scorers(client, ScorerConfig(names=("simulation",), logprobs=logprobs))  # type: ignore[arg-type]
        right, shuffled = [], []
        for i in range(5):
            latent = _with_distractors(i)
            right.append(await scorer(_explained(latent, f"the word {KEYWORDS[i]}")))
            shuffled.append(await scorer(_explained(latent, f"the word {KEYWORDS[i + 1]}")))
        plain = await scorer(_explained(make_latent(0), f"the word {KEYWORDS[1]}"))
        await client.aclose()
    assert isinstance(scorer, SimulationScorer)
    assert len(server.requests) == 5 * 2 * 20 + 20  # one request per excerpt
    for out in right:
        assert out.score is not None and out.score > 0.9 and out.n_unparsed == 0
        assert out.metrics["n_examples_correlated"] == 10  # the 10 activating excerpts
        assert out.metrics["mean_example_correlation"] == pytest.approx(1.0)
        assert set(out.by_quantile) == {"1", "2", "3", "4", "5"}
    for out in shuffled:
        assert out.score is not None and out.score < 0.3
    # predicting 0 everywhere says nothing: the correlation is undefined, not 0
    assert plain.score is None and plain.metrics["n_tokens"] == 240
    predictions = {round(p, 6) for s in right[0].samples for p in s["prediction"]}  # type: ignore[union-attr]
    assert predictions == ({1.0, 9.0} if logprobs == "auto" else {0.0, 10.0})  # expected values with logprobs


async def test_malformed_answers_are_recorded_not_fatal() -> None:
    garbage = [
        Reply(body=chat_body(text))
        for text in ("[0, 10]", "no idea", "[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 99]")
    ]
    async with LoopbackServer(*garbage, default=Respond(oracle)) as server:
        client = OpenAICompatible(server.base_url, "oracle", max_concurrency=1)
        scorer = SimulationScorer(client, ScorerConfig(logprobs="off"))
        out = await scorer(_explained(make_latent(0), f"the word {KEYWORDS[0]}"))
        await client.aclose()
    assert out.n_unparsed == 3 and out.metrics["n_unparsed"] == 3 and out.metrics["n"] == 20
    assert sum(s["prediction"] is None for s in out.samples) == 3
    assert {s["answer"] for s in out.samples if s["prediction"] is None} == {
        "[0, 10]",
        "no idea",
        "[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 99]",
    }
    assert out.metrics["n_tokens"] == 17 * 12 and out.score is not None and out.score > 0.9

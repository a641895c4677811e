"""Surprisal: locating the example's tokens, the prompt logprob requirement, and gemma's right vs shuffled."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from sae_interp.clients import OpenAICompatible, SamplingParams, UnsupportedRequest
from sae_interp.clients.base import TokenLogprob
from sae_interp.clients.errors import BadResponse
from sae_interp.clients.local import Local
from sae_interp.explainers import Explained
from sae_interp.models import load_model
from sae_interp.results import ExplanationOut, LatentExamples
from sae_interp.scorers import ScorerConfig, SurprisalScorer, build_scorers
from sae_interp.scorers.prompts import SURPRISAL
from sae_interp.scorers.surprisal import text_logprobs
from tests.clients.loopback import LoopbackServer, RecordedRequest, Reply, Respond, completion_body
from tests.latents import KEYWORDS, make_latent


def _explained(latent: LatentExamples, text: str) -> Explained:
    return Explained(latent, ExplanationOut(text=text, explainer="x", prompt_version="x", raw=""))


def _entries(*pieces: tuple[str, float]) -> tuple[TokenLogprob | None, ...]:
    return (None, *(TokenLogprob(token=t, logprob=lp) for t, lp in pieces))


def test_prefixes_are_formatted_exactly() -> None:
    assert SURPRISAL.explained.format(explanation="the word piano") == (
        "The following text excerpt is about the word piano.\nExcerpt:\n"
    )
    assert SURPRISAL.neutral == "The following text excerpt is about something.\nExcerpt:\n"
    assert SURPRISAL.version == "surprisal-v1"


def test_text_tokens_are_counted_from_the_end() -> None:
    clean = _entries(("Excerpt", -1.0), (":\n", -2.0), (" the", -3.0), (" cat", -4.0))
    assert text_logprobs(clean, " the cat") == [-3.0, -4.0]
    # the tokenizer merged the newline with the text's leading space: that token carries the text's start
    merged = _entries(("Excerpt", -1.0), (":", -2.0), ("\n ", -5.0), ("the", -3.0), (" cat", -4.0))
    assert text_logprobs(merged, " the cat") == [-5.0, -3.0, -4.0]
    with pytest.raises(BadResponse, match="stop after"):
        text_logprobs(_entries((" cat", -4.0)), "a long text")


def test_needs_a_client_with_prompt_logprobs() -> None:
    client = OpenAICompatible("http://127.0.0.1:9/v1", "m")
    with pytest.raises(UnsupportedRequest, match="prompt logprobs"):
        SurprisalScorer(client)
    with pytest.raises(UnsupportedRequest, match="surprisal"):
        build_scorers(client, ScorerConfig(names=("detection", "surprisal")))


async def test_scores_with_the_tiny_model(tiny_llama_dir: Path) -> None:
    """The mechanics end to end: per-example log-likelihoods are the tiny model's own."""
    client = Local(load_model(tiny_llama_dir, dtype=torch.float32, device="cpu"))
    scorer = SurprisalScorer(client, ScorerConfig(n_test=3, n_non_activating=3))
    latent = make_latent(0)
    out = await scorer(_explained(latent, "the word wedding"))
    assert out.scorer == "surprisal" and out.prompt_version == "surprisal-v1" and out.metrics["n"] == 6
    assert out.score is not None and 0.0 <= out.score <= 1.0
    first = out.samples[0]
    assert first["source"] == "test[0]"
    gen = await client.complete(
        SURPRISAL.neutral + latent.test[0].text, SamplingParams(max_tokens=1, prompt_logprobs=1)
    )
    assert gen.prompt_logprobs is not None
    n = len(latent.test[0].tokens)  # the tiny WordLevel tokenizer gives one token per word here
    mean = sum(e.logprob for e in gen.prompt_logprobs[-n:] if e is not None) / n
    assert first["logprob_neutral"] == pytest.approx(mean, abs=1e-5)
    assert first["improvement"] == pytest.approx(first["logprob_explained"] - first["logprob_neutral"])  # type: ignore[operator]
    await client.aclose()


def _copying_lm(request: RecordedRequest) -> Reply:
    """A toy LM in vLLM's reply shape: a word seen earlier in the prompt costs 1 nat, a new one 5.

    Whitespace joins the word after it, so the prefix's final newline merges with the text's first
    word: the boundary the scorer must handle.
    """
    tokens = re.findall(r"\s*\S+", request.json["prompt"])
    positions: list[dict[str, dict[str, object]] | None] = [None]
    for i, token in enumerate(tokens[1:], 1):
        seen = {t.strip(" .\n").lower() for t in tokens[:i]}
        logprob = -1.0 if token.strip().lower() in seen else -5.0
        positions.append({str(i): {"logprob": logprob, "rank": 1, "decoded_token": token}})
    body = completion_body(".")
    body["choices"][0]["prompt_logprobs"] = positions
    return Reply(body=body)


async def test_scores_through_a_vllm_server() -> None:
    async with LoopbackServer(default=Respond(_copying_lm)) as server:
        client = OpenAICompatible(server.base_url, "vllm", vllm_prompt_logprobs=True, max_retries=0)
        (scorer,) = build_scorers(client, ScorerConfig(names=("surprisal",)))
        latent = make_latent(2)
        right = await scorer(_explained(latent, f"the word {KEYWORDS[2]}"))
        shuffled = await scorer(_explained(latent, f"the word {KEYWORDS[3]}"))
        await client.aclose()
    assert len(server.requests) == 2 * 2 * 20 and server.requests[0].json["prompt_logprobs"] == 1
    # the keyword, named in the prefix, is copied: 4 nats gained on 1 of 12 tokens, nothing elsewhere
    assert right.score == 1.0 and right.metrics["mean_improvement_activating"] == pytest.approx(4 / 12)
    assert right.metrics["mean_improvement_non_activating"] == 0.0
    assert right.by_quantile["1"] == {"auc": 1.0, "n": 2.0}
    assert shuffled.score == 0.5 and shuffled.metrics["mean_improvement_activating"] == 0.0


@pytest.mark.slow
async def test_gemma_prefers_the_right_explanation(gemma) -> None:
    # 2 latents x 2 explanations x 6 examples x 2 prefixes = 48 forward passes over ~30 tokens each
    client = Local(gemma, max_batch=8)
    (scorer,) = build_scorers(client, ScorerConfig(names=("surprisal",), n_test=3, n_non_activating=3))
    right, shuffled = [], []
    for i in (0, 3):
        latent = make_latent(i, n_test=3, n_non=3)
        right.append(await scorer(_explained(latent, f"the word {KEYWORDS[i]}")))
        shuffled.append(await scorer(_explained(latent, f"the word {KEYWORDS[i + 1]}")))
    await client.aclose()
    right_auc = [o.score for o in right]
    shuffled_auc = [o.score for o in shuffled]
    assert all(a is not None for a in right_auc + shuffled_auc)
    assert sum(right_auc) / 2 > sum(shuffled_auc) / 2 + 0.2, (right_auc, shuffled_auc)  # type: ignore[arg-type]
    for out in right:  # naming the keyword makes it (and so its text) likelier
        gain = out.metrics["mean_improvement_activating"]
        assert (
            gain is not None
            and math.isfinite(gain)
            and gain > (out.metrics["mean_improvement_non_activating"] or 0)
        )

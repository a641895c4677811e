"""Explain -> detection + fuzzing through the real pipeline, a real HTTP client and an oracle judge.

Perfect explanations must score ~1, shuffled ones (another latent's explanation) ~0.5; malformed
answers are recorded as unparsed; an unusable explanation fails only its latent.
"""

from __future__ import annotations

import orjson
import pytest

from sae_interp.clients import OpenAICompatible
from sae_interp.explain import ExplainConfig, build_pipeline
from sae_interp.explainers import Explained
from sae_interp.results import ExplanationOut, iter_latent_results
from sae_interp.scorers import DetectionScorer, FuzzingScorer, ScorerConfig
from tests.clients.loopback import LoopbackServer, Reply, Respond, chat_body
from tests.latents import HOOKPOINT, KEYWORDS, example, make_latent
from tests.scorers.oracle import UNUSABLE, oracle

CFG = ExplainConfig(scorers=ScorerConfig(names=("detection", "fuzzing")), max_in_flight=4)


async def test_perfect_explanations_score_near_one(tmp_path) -> None:
    latents = [make_latent(i) for i in range(len(KEYWORDS))]
    async with LoopbackServer(default=Respond(oracle)) as server:
        client = OpenAICompatible(server.base_url, "oracle", max_concurrency=16)
        pipeline, usage = build_pipeline(latents, None, client, CFG, tmp_path)
        result = await pipeline.run()
        await client.aclose()
    assert result.done == 20 and not result.failed
    results = iter_latent_results(tmp_path)
    assert [r.latent for r in results] == list(range(20))
    for r in results:
        assert r.explanation.text == f"the word {KEYWORDS[r.latent]}"
        assert r.scores["detection"].score == 1.0
        assert r.scores["detection"].metrics["auc"] == 1.0  # probabilities came from logprobs
        assert r.scores["fuzzing"].score == 1.0
        assert set(r.scores["detection"].by_quantile) == {"1", "2", "3", "4", "5", "non_activating"}
    # 20 latents x (1 explain + 20 excerpts / 5 per batch for detection + 20 / 5 for fuzzing)
    assert usage.requests == len(server.requests) == 20 * (1 + 4 + 4)
    summary = orjson.loads((tmp_path / "summary.json").read_bytes())
    assert summary["metrics"]["score.detection.score"] == 1.0


@pytest.mark.parametrize("scorer_cls", [DetectionScorer, FuzzingScorer])
async def test_shuffled_explanations_score_near_chance(scorer_cls) -> None:
    async with LoopbackServer(default=Respond(oracle)) as server:
        client = OpenAICompatible(server.base_url, "oracle", max_concurrency=16)
        scorer = scorer_cls(client, ScorerConfig())
        real, shuffled = [], []
        for i in range(len(KEYWORDS)):
            latent = make_latent(i)
            for words, out in ((KEYWORDS[i], real), (KEYWORDS[(i + 1) % len(KEYWORDS)], shuffled)):
                explanation = ExplanationOut(
                    text=f"the word {words}", explainer="x", prompt_version="x", raw=""
                )
                out.append((await scorer(Explained(latent, explanation))).score)
        await client.aclose()
    assert sum(real) / len(real) > 0.95
    assert sum(shuffled) / len(shuffled) == pytest.approx(0.5, abs=0.05)


async def test_malformed_answers_are_recorded_not_fatal() -> None:
    garbage = [Reply(body=chat_body(text)) for text in ("[1, 0]", "no idea", '{"x": 1}')]
    async with LoopbackServer(*garbage, default=Respond(oracle)) as server:
        client = OpenAICompatible(server.base_url, "oracle", max_concurrency=1)
        explanation = ExplanationOut(text="the word wedding", explainer="x", prompt_version="x", raw="")
        out = await DetectionScorer(client, ScorerConfig(logprobs="off"))(
            Explained(make_latent(0), explanation)
        )
        await client.aclose()
    assert out.n_unparsed == 15  # three batches of five
    assert out.metrics["n"] == 20 and out.metrics["accuracy"] == 1.0
    assert sum(s["prediction"] is None for s in out.samples) == 15


async def test_short_last_batch_is_scored() -> None:
    latent = make_latent(3, n_test=8, n_non=5)  # 13 excerpts: batches of 5, 5 and 3
    async with LoopbackServer(default=Respond(oracle)) as server:
        client = OpenAICompatible(server.base_url, "oracle")
        explanation = ExplanationOut(text="the word volcano", explainer="x", prompt_version="x", raw="")
        out = await DetectionScorer(client, ScorerConfig())(Explained(latent, explanation))
        await client.aclose()
    sizes = sorted(r.json["messages"][1]["content"].count("\n") - 2 for r in server.requests)
    assert sizes == [3, 5, 5] and out.metrics["n"] == 13 and out.n_unparsed == 0 and out.score == 1.0


async def test_unusable_explanation_fails_only_its_latent(tmp_path) -> None:
    import numpy as np

    bad = make_latent(5)
    rng = np.random.default_rng(1)
    bad = bad.model_copy(update={"train": [example(rng, UNUSABLE, quantile=1) for _ in range(3)]})
    latents = [make_latent(0), bad, make_latent(2)]
    async with LoopbackServer(default=Respond(oracle)) as server:
        client = OpenAICompatible(server.base_url, "oracle")
        pipeline, _ = build_pipeline(latents, None, client, CFG, tmp_path)
        result = await pipeline.run()
        await client.aclose()
    assert result.done == 2 and len(result.failed) == 1
    failure = result.failed[0]
    assert failure.key == f"{HOOKPOINT}/5" and failure.stage == "explain"
    assert "ExplanationParseError" in failure.error and "[EXPLANATION]:" in failure.error
    lines = (tmp_path / "failures.jsonl").read_bytes().splitlines()
    assert len(lines) == 1 and orjson.loads(lines[0])["key"] == f"{HOOKPOINT}/5"
    # a re-run redoes only the failed latent
    async with LoopbackServer(default=Respond(oracle)) as server:
        client = OpenAICompatible(server.base_url, "oracle")
        pipeline, _ = build_pipeline(latents, None, client, CFG, tmp_path)
        again = await pipeline.run()
        await client.aclose()
    assert again.skipped == 2 and len(again.failed) == 1 and len(server.requests) == 1

"""Our HTTP client and the explain pipeline against a real llama.cpp server serving the embedded gemma GGUF.

The server (`llama-cpp-python[server]`, in the dev extra) reads the GGUF assembled from the embedded
packages, so this is the real wire format of a real server, logprobs included: the shapes a loopback
server can only imitate. llama.cpp serialises requests, so the workload stays small.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from sae_interp.clients import ClientCapabilities, Message, OpenAICompatible, SamplingParams
from sae_interp.explain import ExplainConfig, build_pipeline
from sae_interp.explainers import ExplainerConfig
from sae_interp.models.embedded import ensure_gguf, resolve_embedded
from sae_interp.results import iter_latent_results
from sae_interp.scorers import ScorerConfig
from tests.clients.servers import free_port, served
from tests.latents import make_latent

pytestmark = [pytest.mark.server, pytest.mark.slow]

pytest.importorskip(
    "llama_cpp.server",
    reason="llama-cpp-python[server] is not installed: the README's test command installs the llamacpp extra",
)


@pytest.fixture(scope="module")
def llamacpp_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = resolve_embedded("gemma-3-270m")
    assert model is not None
    gguf = ensure_gguf(model)
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
        "--port", str(port), "--n_threads", "2", "--n_ctx", "4096", "--chat_format", "gemma",
        "--interrupt_requests", "false", "--model_alias", "gemma",
    ]  # fmt: skip
    log = tmp_path_factory.mktemp("llamacpp") / "server.log"
    with served(command, port, log) as base_url:
        yield base_url


def _client(base_url: str, **capabilities: object) -> OpenAICompatible:
    caps = ClientCapabilities(logprobs=True, max_top_logprobs=20, **capabilities)  # type: ignore[arg-type]
    return OpenAICompatible(base_url, "gemma", max_concurrency=4, timeout=120.0, capabilities=caps)


def _check_logprobs(logprobs: tuple | None, n_tokens: int, top: int) -> None:
    assert logprobs is not None and len(logprobs) == n_tokens
    for token in logprobs:
        assert token.logprob <= 0.0
        assert 1 <= len(token.top_logprobs) <= top
        values = [alt.logprob for alt in token.top_logprobs]
        assert values == sorted(values, reverse=True)  # best first
        # Where the chosen token is among the alternatives, both report the same logprob. (It need
        # not be the first: llama-cpp-python's server applies a repeat penalty after the logprobs.)
        chosen = [alt.logprob for alt in token.top_logprobs if alt.token == token.token]
        assert all(math.isclose(token.logprob, c, abs_tol=1e-3) for c in chosen)


async def test_chat_and_completion_with_logprobs(llamacpp_url: str) -> None:
    client = _client(llamacpp_url)
    params = SamplingParams(max_tokens=4, temperature=0.0, logprobs=True, top_logprobs=3)
    try:
        chat = await client.chat([Message(role="user", content="Name a colour.")], params)
        completion = await client.complete("The capital of France is", params)
    finally:
        await client.aclose()
    for generation in (chat, completion):
        assert generation.text
        assert generation.usage is not None and generation.usage.completion_tokens >= 1
        _check_logprobs(generation.logprobs, generation.usage.completion_tokens, top=3)


async def test_explain_and_score_pipeline_resumes(llamacpp_url: str, tmp_path: Path) -> None:
    latents = [make_latent(i, n_train=4, n_test=5, n_non=5) for i in range(3)]
    cfg = ExplainConfig(
        explainer=ExplainerConfig(max_tokens=32),
        scorers=ScorerConfig(names=("detection", "fuzzing"), logprobs="off"),
        max_in_flight=2,
    )
    # gemma-3-270m is a base model: completion-style prompts, as the embedded client would use.
    client = _client(llamacpp_url, chat_tuned=False)
    try:
        pipeline, usage = build_pipeline(latents, None, client, cfg, tmp_path)
        first = await pipeline.run()
        pipeline, _ = build_pipeline(latents, None, client, cfg, tmp_path)
        again = await pipeline.run()
    finally:
        await client.aclose()

    assert first.status == "finished" and first.done + len(first.failed) == 3
    failures = tmp_path / "failures.jsonl"
    lines = failures.read_bytes().splitlines() if failures.exists() else []
    failed = {orjson.loads(line)["key"] for line in lines}
    results = iter_latent_results(tmp_path)
    written = {r.key for r in results}
    # Every latent ended exactly once: written, or recorded as failed with its reason.
    assert not written & failed and written | failed == {latent.key for latent in latents}
    assert results, f"no latent survived a real server; failures: {failed}"
    for result in results:
        assert result.explanation.text.strip()
        for name in ("detection", "fuzzing"):
            score = result.scores[name]
            assert score.metrics["n"] == 10  # 5 activating + 5 others, parsed or not
            assert 0 <= score.n_unparsed <= 10
    # Real requests went over the wire and were counted: 1 explanation + 2 + 2 scorer batches each.
    assert usage.requests >= 5 * len(results)
    assert usage.completion_tokens > 0
    # The second run skipped every finished latent and retried only the failed ones.
    assert again.skipped == first.done and again.done + len(again.failed) == len(first.failed)

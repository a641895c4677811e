"""The in-process `Local` client: end to end on the real gemma-3-270m, mechanics on the tiny Llama."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from sae_interp.clients import (
    ClientConfig,
    Generation,
    LLMClient,
    SamplingParams,
    UnsupportedRequest,
    make_client,
)
from sae_interp.clients.local import Local
from sae_interp.models import encode_chat, load_model

GREEDY = SamplingParams(max_tokens=4)


@pytest.fixture(scope="module")
def local_gemma(gemma) -> Local:
    return Local(gemma, max_batch=8)


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir: Path) -> Local:
    client = make_client(ClientConfig(kind="local", model=str(tiny_llama_dir), max_concurrency=4))
    assert isinstance(client, Local) and isinstance(client, LLMClient)
    return client


async def test_chat_logprobs_match_a_direct_forward(local_gemma: Local, gemma) -> None:
    params = SamplingParams(max_tokens=4, logprobs=True, top_logprobs=5)
    gen = await local_gemma.chat([{"role": "user", "content": "Name a colour."}], params)
    assert gen.text.strip() and gen.usage is not None and gen.logprobs is not None
    assert len(gen.logprobs) == gen.usage.completion_tokens <= 4
    prompt = encode_chat(gemma, ["Name a colour."])  # the same rendering as the client's chat
    assert gen.usage.prompt_tokens == prompt.input_ids.shape[1]
    with torch.no_grad():
        logp = gemma.hf(prompt.input_ids).logits[0, -1].float().log_softmax(-1)
    first = gen.logprobs[0]
    best = logp.topk(5)
    assert first.logprob == pytest.approx(best.values[0].item(), abs=1e-3)  # greedy took the argmax
    assert [t.token for t in first.top_logprobs] == [gemma.tokenizer.decode([i]) for i in best.indices]
    assert [t.logprob for t in first.top_logprobs] == pytest.approx(best.values.tolist(), abs=1e-3)
    assert first.token == first.top_logprobs[0].token
    assert gen.text.startswith(first.token.lstrip()) or gen.text.startswith(first.token)


async def test_complete_is_deterministic_and_honours_stop_and_max_tokens(local_gemma: Local) -> None:
    prompt = "The capital of France is"
    one = await local_gemma.complete(prompt, SamplingParams(max_tokens=6))
    two = await local_gemma.complete(prompt, SamplingParams(max_tokens=6))
    assert one == two and one.text and one.logprobs is None
    assert one.usage is not None and one.usage.completion_tokens <= 6
    if one.finish_reason == "length":
        assert one.usage.completion_tokens == 6
    stop = one.text[3:5]  # a stop string we know the greedy continuation contains
    cut = await local_gemma.complete(prompt, SamplingParams(max_tokens=6, stop=(stop,)))
    assert cut.text == one.text[: one.text.find(stop)] and cut.finish_reason == "stop"
    short = await local_gemma.complete(prompt, SamplingParams(max_tokens=2))
    assert short.usage is not None and short.usage.completion_tokens <= 2
    assert one.text.startswith(short.text)


async def test_concurrent_requests_share_one_generate(local_gemma: Local) -> None:
    before = local_gemma.stats.generate_calls
    prompts = ["Red, green and", "One, two,", "Monday, Tuesday,", "Cats and"]
    gens = await asyncio.gather(*(local_gemma.complete(p, GREEDY) for p in prompts))
    assert local_gemma.stats.generate_calls == before + 1 and local_gemma.stats.max_batch_size >= 4
    assert all(isinstance(g, Generation) and g.text for g in gens)
    again = await asyncio.gather(*(local_gemma.complete(p, GREEDY) for p in prompts))
    assert [g.text for g in again] == [g.text for g in gens]


async def test_only_compatible_params_share_a_batch(tiny: Local) -> None:
    before = tiny.stats.generate_calls
    sampled = SamplingParams(max_tokens=3, temperature=0.8, seed=1)
    calls = [tiny.complete(f"a b {i}", SamplingParams(max_tokens=2 + i)) for i in range(6)]
    calls.append(tiny.complete("a b", sampled))
    gens = await asyncio.gather(*calls)
    # six greedy calls in batches of at most 4 (max_concurrency), the sampled one alone
    assert tiny.stats.generate_calls == before + 3
    for i, gen in enumerate(gens[:6]):
        assert gen.usage is not None and gen.usage.completion_tokens <= 2 + i


async def test_unsupported_requests_fail_before_generating(tiny: Local) -> None:
    before = tiny.stats.generate_calls
    with pytest.raises(UnsupportedRequest, match="JSON"):
        await tiny.chat([{"role": "user", "content": "hi"}], SamplingParams(json_mode=True))
    with pytest.raises(UnsupportedRequest, match="top_logprobs=21"):
        await tiny.complete("hi", SamplingParams(logprobs=True, top_logprobs=21))
    assert tiny.stats.generate_calls == before
    assert tiny.capabilities.logprobs and tiny.capabilities.max_concurrency == 4


async def test_prompt_logprobs_match_a_direct_forward(tiny: Local, tiny_llama_dir: Path) -> None:
    model = load_model(tiny_llama_dir, device="cpu")  # the client's default dtype (bf16 on AVX512_BF16)
    prompt = "a b c a b"
    ids = model.tokenizer(prompt)["input_ids"]
    plain, gen = await asyncio.gather(
        tiny.complete(prompt, GREEDY), tiny.complete(prompt, SamplingParams(max_tokens=4, prompt_logprobs=3))
    )
    assert plain.prompt_logprobs is None and gen.text == plain.text  # generation is unchanged
    assert gen.prompt_logprobs is not None and len(gen.prompt_logprobs) == len(ids) >= 5
    assert gen.prompt_logprobs[0] is None  # the first token has no context
    with torch.no_grad():
        logp = model.hf(torch.tensor([ids])).logits[0].float().log_softmax(-1)
    for i, entry in enumerate(gen.prompt_logprobs[1:], 1):
        assert entry is not None
        assert entry.token == model.tokenizer.decode([ids[i]])
        assert entry.logprob == pytest.approx(logp[i - 1, ids[i]].item(), abs=1e-5)
        best = logp[i - 1].topk(3)
        assert [t.token for t in entry.top_logprobs] == [model.tokenizer.decode([j]) for j in best.indices]
        assert [t.logprob for t in entry.top_logprobs] == pytest.approx(best.values.tolist(), abs=1e-5)
    assert tiny.capabilities.prompt_logprobs
    # a greedy one-token call takes its token from the prompt pass instead of `generate`: same answer
    quick = await tiny.complete(
        prompt, SamplingParams(max_tokens=1, logprobs=True, top_logprobs=2, prompt_logprobs=1)
    )
    full = await tiny.complete(prompt, SamplingParams(max_tokens=1, logprobs=True, top_logprobs=2))
    assert quick.text == full.text and quick.usage == full.usage and quick.finish_reason == full.finish_reason
    assert quick.logprobs is not None and full.logprobs is not None and len(quick.logprobs) == 1
    assert quick.logprobs[0].token == full.logprobs[0].token
    assert quick.logprobs[0].logprob == pytest.approx(full.logprobs[0].logprob, abs=1e-5)
    assert [t.token for t in quick.logprobs[0].top_logprobs] == [
        t.token for t in full.logprobs[0].top_logprobs
    ]
    assert quick.prompt_logprobs is not None
    assert [e.logprob if e else None for e in quick.prompt_logprobs] == pytest.approx(
        [e.logprob if e else None for e in gen.prompt_logprobs]
    )


async def test_works_again_after_aclose_and_in_a_new_loop(tiny_llama_dir: Path) -> None:
    client = Local(load_model(tiny_llama_dir, dtype=torch.float32, device="cpu"))
    first = await client.complete("a b", GREEDY)
    await client.aclose()
    second = await asyncio.to_thread(asyncio.run, client.complete("a b", GREEDY))
    assert first == second


async def test_a_long_shared_prefix_runs_once_with_the_same_answers(tiny: Local) -> None:
    """Calls that share >= MIN_SHARED_PREFIX leading tokens are batched over one prefix KV cache."""
    from sae_interp.models.prefix import MIN_SHARED_PREFIX

    words = " ".join(f"w{i % 50}" for i in range(MIN_SHARED_PREFIX + 10))
    prompts = [f"{words} w{i} w{i + 1}" * (1 + i % 2) for i in range(3)]
    params = SamplingParams(max_tokens=5, logprobs=True, top_logprobs=2)
    alone = [await tiny.complete(p, params) for p in prompts]  # one call per batch: nothing shared
    before = tiny.stats.generate_calls
    together = await asyncio.gather(*(tiny.complete(p, params) for p in prompts))
    assert tiny.stats.generate_calls == before + 1  # one batch, over the shared prefix
    for a, b in zip(alone, together, strict=True):
        assert a.text == b.text
        assert a.logprobs is not None and b.logprobs is not None
        assert [t.logprob for t in b.logprobs] == pytest.approx([t.logprob for t in a.logprobs], abs=2e-2)

"""`OfflineVLLM`: vLLM is imported lazily, its absence is one clear error, and (opt-in) it generates.

The engine's mapping is tested against a fake vLLM module. The real-engine test needs vLLM
importable and is skipped elsewhere; on a CPU, run it inside the venv of scripts/vllm_cpu_server.sh:

    V=${SAE_INTERP_CACHE:-~/.cache/sae_interp}/vllm-cpu-venv
    $V/bin/pip install --no-deps -e . && $V/bin/pip install orjson aiohttp asyncio-throttle nnsight \
        accelerate gguf pytest pytest-asyncio -c <(printf 'torch==2.13.0+cpu\ntransformers==5.19.0\n')
    $V/bin/python -m pytest tests/clients/test_vllm_offline.py -m vllm -s
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys

import pytest

from sae_interp.clients import (
    BackendNotInstalled,
    ClientConfig,
    ClientError,
    OfflineVLLM,
    SamplingParams,
    UnsupportedRequest,
    make_client,
)

HAS_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.mark.parametrize(
    "build",
    [
        lambda: OfflineVLLM("gemma-3-270m"),
        lambda: make_client(ClientConfig(kind="vllm", model="gemma-3-270m")),
    ],
    ids=["direct", "make_client"],
)
def test_without_vllm_building_the_client_says_what_to_install(
    build, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` fail even where it is installed
    with pytest.raises(BackendNotInstalled) as info:
        build()
    message = str(info.value)
    assert "pip install 'sae_interp[vllm]'" in message and "CUDA GPU" in message
    assert "scripts/vllm_cpu_server.sh" in message
    assert "latents.client.kind=openai" in message and "http://127.0.0.1:8000/v1" in message
    assert isinstance(info.value, ImportError) and isinstance(info.value.__cause__, ModuleNotFoundError)


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed (opt-in: run inside a vLLM / vllm-cpu venv)")
def test_offline_vllm_generates_batches_and_returns_logprobs(monkeypatch: pytest.MonkeyPatch) -> None:
    model = os.environ.get("SAE_INTERP_VLLM_MODEL", "gemma-3-270m")
    # On a CPU, a fixed 1 GiB KV cache: by default vllm-cpu reserves 92% of RAM and refuses to start
    # when other processes hold more than the rest.
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"))
    client = OfflineVLLM(model, dtype="float32", enforce_eager=True, max_model_len=1024, max_concurrency=8)

    async def run() -> None:
        assert client.capabilities.logprobs and client.capabilities.prompt_logprobs
        assert not client.capabilities.chat_tuned  # gemma-3-270m is a base model: plain template
        greedy = SamplingParams(max_tokens=8, logprobs=True, top_logprobs=3, prompt_logprobs=2)
        prompts = [f"Fact {i}: the capital of France is" for i in range(6)]
        gens = await asyncio.gather(*(client.complete(p, greedy) for p in prompts))
        for gen in gens:
            assert gen.text and gen.logprobs is not None and gen.usage is not None
            assert len(gen.logprobs) == gen.usage.completion_tokens <= 8
            for step in gen.logprobs:  # greedy: the chosen token is the best alternative
                assert len(step.top_logprobs) == 3
                assert [a.logprob for a in step.top_logprobs] == sorted(
                    (a.logprob for a in step.top_logprobs), reverse=True
                )
                assert step.logprob == pytest.approx(step.top_logprobs[0].logprob, abs=1e-4)
            assert gen.prompt_logprobs is not None and gen.prompt_logprobs[0] is None
            assert len(gen.prompt_logprobs) == gen.usage.prompt_tokens
        stopped = await client.complete("One, two, three,", SamplingParams(max_tokens=16, stop=(",",)))
        assert "," not in stopped.text and stopped.finish_reason == "stop"
        reply = await client.chat([{"role": "user", "content": "Say hello."}], SamplingParams(max_tokens=8))
        assert reply.usage is not None and reply.usage.completion_tokens >= 1
        with pytest.raises(UnsupportedRequest, match="JSON"):
            await client.chat([{"role": "user", "content": "{}"}], SamplingParams(json_mode=True))
        await client.aclose()

    asyncio.run(run())


class _Logprob:
    """vLLM's `Logprob` shape: logprob, rank (1 = best), decoded_token."""

    def __init__(self, logprob: float, rank: int, decoded_token: str | None = None) -> None:
        self.logprob, self.rank, self.decoded_token = logprob, rank, decoded_token


class _FakeEngine:
    """Answers every request with tokens 5, 6 (greedy), streaming one partial output first."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict, dict, str]] = []
        self.closed = False

    @classmethod
    def from_engine_args(cls, args: dict) -> _FakeEngine:
        engine = cls()
        engine.args = args
        return engine

    async def generate(self, prompt: dict, params: dict, request_id: str):
        from types import SimpleNamespace as NS

        self.requests.append((prompt, params, request_id))
        ids, k = prompt["prompt_token_ids"], params["logprobs"]

        def step(chosen: int) -> dict[int, _Logprob]:
            # top-k by rank; the chosen token (rank 1 here) is among them, or added when k == 0
            ranked = {chosen: _Logprob(-0.1, 1), 7: _Logprob(-2.5, 2), 8: _Logprob(-3.0, 3)}
            return dict(list(ranked.items())[: max(k, 1)])

        tokens = [5, 6]
        for n in (1, 2):  # cumulative outputs, as vLLM's default output kind yields them
            completion = NS(
                text=" ab"[:n + 1], token_ids=tokens[:n], finish_reason="length" if n == 2 else None,
                logprobs=[step(t) for t in tokens[:n]] if k is not None else None,
            )  # fmt: skip
            prompt_logprobs = None
            if params["prompt_logprobs"]:
                prompt_logprobs = [None, *(step(t) for t in ids[1:])]
            yield NS(outputs=[completion], prompt_token_ids=ids, prompt_logprobs=prompt_logprobs)

    def shutdown(self) -> None:
        self.closed = True


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch, tiny_llama_dir) -> OfflineVLLM:
    """An `OfflineVLLM` over a fake engine and the tiny model's tokenizer (no vLLM needed)."""
    from types import SimpleNamespace

    from sae_interp.clients import vllm_offline

    fake = SimpleNamespace(AsyncEngineArgs=lambda **kw: kw, SamplingParams=lambda **kw: kw)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setattr(vllm_offline, "_async_llm_class", lambda: _FakeEngine)
    return OfflineVLLM(str(tiny_llama_dir), max_concurrency=4)


async def test_maps_params_and_outputs_like_the_other_clients(fake_vllm: OfflineVLLM) -> None:
    engine: _FakeEngine = fake_vllm._engine
    assert engine.args["max_num_seqs"] == 4 and engine.args["max_logprobs"] == 20
    params = SamplingParams(max_tokens=2, logprobs=True, top_logprobs=2, prompt_logprobs=1, stop=("x",))
    gen = await fake_vllm.complete("hello world", params)
    prompt, sent, _ = engine.requests[0]
    assert sent == {
        "max_tokens": 2, "temperature": 0.0, "stop": ["x"], "seed": None, "logprobs": 2, "prompt_logprobs": 1
    }  # fmt: skip
    assert gen.text == " ab" and gen.finish_reason == "length"  # the last (complete) output is used
    assert gen.usage is not None and gen.usage.completion_tokens == 2
    assert gen.usage.prompt_tokens == len(prompt["prompt_token_ids"])
    assert gen.logprobs is not None and [s.logprob for s in gen.logprobs] == [-0.1, -0.1]
    assert [a.logprob for a in gen.logprobs[0].top_logprobs] == [-0.1, -2.5]
    assert gen.prompt_logprobs is not None and gen.prompt_logprobs[0] is None
    assert len(gen.prompt_logprobs) == len(prompt["prompt_token_ids"])
    plain = await fake_vllm.complete("hello", SamplingParams(max_tokens=None))
    assert plain.logprobs is None and plain.prompt_logprobs is None
    assert engine.requests[1][1]["logprobs"] is None and engine.requests[1][1]["max_tokens"] == 256
    await fake_vllm.aclose()
    assert engine.closed


async def test_chat_renders_the_template_once_and_rejects_json(fake_vllm: OfflineVLLM) -> None:
    engine: _FakeEngine = fake_vllm._engine
    assert not fake_vllm.capabilities.chat_tuned  # the tiny model has no template: the plain one
    await fake_vllm.chat([{"role": "user", "content": "hello"}], SamplingParams(max_tokens=2))
    ids = engine.requests[0][0]["prompt_token_ids"]
    tok = fake_vllm._tok
    expected = tok.apply_chat_template(
        [{"role": "user", "content": "hello"}], tokenize=False, add_generation_prompt=True
    )
    assert expected == "User: hello\nAssistant:"
    assert ids == tok(expected)["input_ids"]  # rendered once; the plain template holds no BOS text
    with pytest.raises(UnsupportedRequest, match="JSON"):
        await fake_vllm.chat([{"role": "user", "content": "{}"}], SamplingParams(json_mode=True))
    with pytest.raises(UnsupportedRequest, match="top_logprobs=21"):
        await fake_vllm.complete("x", SamplingParams(logprobs=True, top_logprobs=21))
    await fake_vllm.aclose()
    with pytest.raises(ClientError, match="closed"):
        await fake_vllm.complete("hello", SamplingParams(max_tokens=2))

"""ClientConfig validation, the backend registry, and the OpenRouter preset."""

from __future__ import annotations

import pytest

from sae_interp.clients import (
    OPENROUTER_BASE_URL,
    ClientConfig,
    MissingAPIKey,
    OpenAICompatible,
    OpenRouter,
    SamplingParams,
    make_client,
    register_client,
)
from sae_interp.clients.factory import CLIENT_BUILDERS

from .loopback import LoopbackServer


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"kind": "anthropic", "base_url": "http://x"},
            r"client.kind='anthropic'; expected one of \('openai'",
        ),
        ({"base_url": None}, "base_url is required"),
        ({"base_url": "127.0.0.1:8000"}, "http:// or https://"),
        ({"base_url": "http://x", "model": ""}, "client.model"),
        ({"base_url": "http://x", "max_concurrency": 0}, "max_concurrency must be >= 1, got 0"),
        ({"base_url": "http://x", "requests_per_second": 0.0}, "requests_per_second"),
        ({"base_url": "http://x", "requests_per_second": float("inf")}, "requests_per_second"),
        ({"base_url": "http://x", "timeout": -1.0}, "client.timeout"),
        ({"base_url": "http://x", "deadline": 0.0}, "client.deadline"),
        ({"base_url": "http://x", "max_retries": -1}, "max_retries must be >= 0, got -1"),
    ],
)
def test_config_validation_names_field_and_value(kwargs: dict[str, object], message: str) -> None:
    merged: dict[str, object] = {"model": "m", **kwargs}
    with pytest.raises(ValueError, match=message):
        ClientConfig(**merged)  # type: ignore[arg-type]  # deliberately wrong values


def test_a_pasted_key_is_rejected_without_being_echoed() -> None:
    secret = "sk-or-v1-abcdef0123456789"
    with pytest.raises(ValueError, match="NAME of an environment variable") as info:
        ClientConfig(kind="openrouter", model="m", api_key_env=secret)
    assert secret not in str(info.value)


async def test_make_client_builds_an_openai_client_that_works() -> None:
    async with LoopbackServer() as server:
        cfg = ClientConfig(
            kind="openai", model="m", base_url=server.base_url, max_concurrency=2, max_retries=0
        )
        client = make_client(cfg)
        assert isinstance(client, OpenAICompatible)
        assert client.capabilities.max_concurrency == 2
        gen = await client.chat([{"role": "user", "content": "hi"}], SamplingParams())
        await client.aclose()
    assert gen.text == "ok"


async def test_openrouter_preset_sends_key_and_attribution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test")
    async with LoopbackServer() as server:
        cfg = ClientConfig(kind="openrouter", model="meta/llama", base_url=server.base_url, max_retries=0)
        client = make_client(cfg)
        assert isinstance(client, OpenRouter)
        await client.chat([{"role": "user", "content": "hi"}], SamplingParams())
        await client.aclose()
    headers = server.requests[0].headers
    assert headers["authorization"] == "Bearer sk-or-test"
    assert headers["x-title"] == "sae_interp"
    assert server.requests[0].json["model"] == "meta/llama"


async def test_openrouter_defaults_and_referer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test")
    client = OpenRouter("m", app_url="https://example.org/app")
    assert client.base_url == OPENROUTER_BASE_URL
    assert client._headers["http-referer"] == "https://example.org/app"
    assert "sk-or-test" not in repr(client)
    await client.aclose()


def test_openrouter_without_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    with pytest.raises(MissingAPIKey, match=r"OPENROUTER_API_KEY.*openrouter.ai/keys"):
        make_client(ClientConfig(kind="openrouter", model="m"))


def test_registry_rejects_duplicates_and_unknown_kinds_list_the_available(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_client("openai", CLIENT_BUILDERS["openai"])
    monkeypatch.delitem(CLIENT_BUILDERS, "openrouter")
    with pytest.raises(ValueError, match=r"no backend; available: \['local', 'openai', 'vllm'\]"):
        make_client(ClientConfig(kind="openrouter", model="m"))


def test_a_local_client_shares_a_loaded_model_of_the_same_name(tiny_model, tiny_llama_dir) -> None:
    from sae_interp.clients.local import Local

    same = make_client(
        ClientConfig(kind="local", model=str(tiny_llama_dir), max_concurrency=3), loaded=tiny_model
    )
    assert isinstance(same, Local) and same._hf is tiny_model.hf and same.max_batch == 3
    other = make_client(ClientConfig(kind="local", model=str(tiny_llama_dir) + "/"), loaded=tiny_model)
    assert isinstance(other, Local) and other._hf is not tiny_model.hf  # another name: its own copy

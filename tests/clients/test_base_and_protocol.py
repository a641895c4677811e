"""SamplingParams, ClientCapabilities and the wire models, without a server."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from sae_interp.clients import (
    ClientCapabilities,
    LLMClient,
    OpenAICompatible,
    SamplingParams,
    UnsupportedRequest,
)
from sae_interp.clients.protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionResponse,
    ErrorResponse,
)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"stop": "\n"}, "stop"),
        ({"top_logprobs": -1, "logprobs": True}, "top_logprobs"),
        ({"top_logprobs": 5}, "needs logprobs=True"),
    ],
)
def test_sampling_params_validation_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SamplingParams(**kwargs)  # type: ignore[arg-type]  # deliberately wrong values


def test_sampling_params_are_frozen_and_replaceable() -> None:
    base = SamplingParams(max_tokens=8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.temperature = 1.0  # type: ignore[misc]  # the point of the test
    hot = dataclasses.replace(base, temperature=1.0)
    assert (base.temperature, hot.temperature, hot.max_tokens) == (0.0, 1.0, 8)


def test_capabilities_check_lists_every_problem() -> None:
    caps = ClientCapabilities(logprobs=False)
    params = SamplingParams(logprobs=True, top_logprobs=3, json_mode=True, prompt_logprobs=1)
    with pytest.raises(UnsupportedRequest) as info:
        caps.check(params, client="tiny")
    message = str(info.value)
    for part in ("tiny", "logprobs=True", "top_logprobs=3", "prompt_logprobs=1", "JSON"):
        assert part in message
    ClientCapabilities(logprobs=True, max_top_logprobs=5).check(SamplingParams(logprobs=True, top_logprobs=5))


def test_openai_compatible_satisfies_the_protocol() -> None:
    client = OpenAICompatible("http://127.0.0.1:9/v1", "m", max_concurrency=3)
    assert isinstance(client, LLMClient)
    assert client.capabilities.max_concurrency == 3
    assert client.capabilities.logprobs and not client.capabilities.prompt_logprobs


def test_responses_ignore_unknown_fields_and_requests_reject_them() -> None:
    body = {
        "id": "x",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi", "refusal": None}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3, "cached": 0},
        "provider": "somewhere",
    }
    assert ChatCompletionResponse.model_validate(body).choices[0].message.content == "hi"
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate({"model": "m", "messages": [], "temprature": 0.5})


def test_empty_choices_are_invalid() -> None:
    with pytest.raises(ValidationError):
        ChatCompletionResponse.model_validate({"choices": []})
    with pytest.raises(ValidationError):
        CompletionResponse.model_validate({"id": "x"})


def test_legacy_logprobs_shape() -> None:
    body = {
        "choices": [
            {
                "text": " a",
                "logprobs": {
                    "tokens": [" a"],
                    "token_logprobs": [-0.5],
                    "top_logprobs": [{" a": -0.5, " b": -1.5}],
                    "text_offset": [3],
                },
            }
        ]
    }
    lp = CompletionResponse.model_validate(body).choices[0].logprobs
    assert lp is not None and lp.top_logprobs == [{" a": -0.5, " b": -1.5}]


@pytest.mark.parametrize("code", ["rate_limit_exceeded", 429, None])
def test_error_response_accepts_openai_and_openrouter_codes(code: object) -> None:
    err = ErrorResponse.model_validate({"error": {"message": "slow down", "code": code, "metadata": {}}})
    assert err.error.message == "slow down" and err.error.code == code

"""OpenAICompatible against the loopback server: real sockets on 127.0.0.1, sleeps recorded."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from email.utils import formatdate
from typing import Any

import pytest

from sae_interp.clients import (
    BadResponse,
    ConnectionFailed,
    DeadlineExceeded,
    Generation,
    Message,
    OpenAICompatible,
    RateLimited,
    RequestRejected,
    SamplingParams,
    ServerError,
    Timeout,
    UnsupportedRequest,
)

from .loopback import (
    Hang,
    LoopbackServer,
    RecordedRequest,
    Reply,
    Reset,
    Respond,
    SleepRecorder,
    Truncated,
    chat_body,
    completion_body,
    error_reply,
    rate_limited,
)

USER: list[Message] = [{"role": "user", "content": "hi"}]
GREEDY = SamplingParams(max_tokens=4)


def _client(server: LoopbackServer, sleeps: SleepRecorder | None = None, **kwargs: Any) -> OpenAICompatible:
    kwargs.setdefault("max_retries", 0)  # STYLE rule 24: see the first failure unless retries are tested
    if sleeps is not None:
        kwargs["sleep"] = sleeps
    return OpenAICompatible(server.base_url, "test-model", **kwargs)


# ------------------------------------------------------------------ happy paths and wire format


async def test_chat_sends_openai_request_and_parses_reply() -> None:
    async with (
        LoopbackServer(Reply(body=chat_body("hello", usage=(7, 2)))) as server,
        _client(server) as client,
    ):
        params = SamplingParams(max_tokens=16, temperature=0.3, top_p=0.9, stop=("\n",), seed=11)
        gen = await client.chat(USER, params)
    assert gen == Generation(text="hello", finish_reason="stop", usage=gen.usage, logprobs=None)
    assert gen.usage is not None and (gen.usage.prompt_tokens, gen.usage.completion_tokens) == (7, 2)
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.json == {
        "model": "test-model",
        "messages": USER,
        "max_tokens": 16,
        "seed": 11,
        "stop": ["\n"],
        "temperature": 0.3,
        "top_p": 0.9,
    }
    assert "authorization" not in request.headers  # no api_key_env: no key sent


async def test_chat_logprobs_requested_and_parsed() -> None:
    logprobs = [("Yes", -0.1, [("Yes", -0.1), ("No", -2.4)]), ("!", -0.5, [("!", -0.5), (".", -1.0)])]
    async with (
        LoopbackServer(Reply(body=chat_body("Yes!", logprobs=logprobs))) as server,
        _client(server) as client,
    ):
        gen = await client.chat(USER, SamplingParams(max_tokens=2, logprobs=True, top_logprobs=2))
    assert server.requests[0].json["logprobs"] is True
    assert server.requests[0].json["top_logprobs"] == 2
    assert gen.logprobs is not None
    assert [(t.token, t.logprob) for t in gen.logprobs] == [("Yes", -0.1), ("!", -0.5)]
    assert [(a.token, a.logprob) for a in gen.logprobs[0].top_logprobs] == [("Yes", -0.1), ("No", -2.4)]


async def test_legacy_completion_logprobs_parsed_best_first() -> None:
    logprobs = [(" Paris", -0.2, {" Lyon": -3.0, " Paris": -0.2}), (".", -0.7, {".": -0.7, "!": -1.9})]
    async with (
        LoopbackServer(Reply(body=completion_body(" Paris.", logprobs=logprobs))) as server,
        _client(server) as client,
    ):
        gen = await client.complete(
            "The capital is", SamplingParams(max_tokens=2, logprobs=True, top_logprobs=2)
        )
    request = server.requests[0]
    assert request.path == "/v1/completions"
    assert request.json["prompt"] == "The capital is"
    assert request.json["logprobs"] == 2  # legacy: an int, the number of alternatives
    assert gen.text == " Paris." and gen.finish_reason == "length"
    assert gen.logprobs is not None
    assert [t.token for t in gen.logprobs] == [" Paris", "."]
    assert [a.token for a in gen.logprobs[0].top_logprobs] == [" Paris", " Lyon"]


async def test_legacy_completion_without_logprobs_sends_none() -> None:
    async with LoopbackServer() as server, _client(server) as client:
        gen = await client.complete("x", GREEDY)
    assert "logprobs" not in server.requests[0].json
    assert gen.text == "ok" and gen.logprobs is None


async def test_json_mode_and_schema_sent_as_response_format() -> None:
    schema = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
    async with LoopbackServer() as server, _client(server) as client:
        await client.chat(USER, SamplingParams(json_mode=True))
        await client.chat(USER, SamplingParams(json_schema=schema))
        await client.chat(USER, GREEDY)
    first, second, third = (r.json for r in server.requests)
    assert first["response_format"] == {"type": "json_object"}
    assert second["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema, "strict": True},
    }
    assert "response_format" not in third


async def test_unsupported_params_fail_before_any_request() -> None:
    async with LoopbackServer() as server, _client(server) as client:
        with pytest.raises(UnsupportedRequest, match="prompt_logprobs"):
            await client.chat(USER, SamplingParams(prompt_logprobs=1))
        with pytest.raises(UnsupportedRequest, match="top_logprobs=21"):
            await client.chat(USER, SamplingParams(logprobs=True, top_logprobs=21))
        with pytest.raises(UnsupportedRequest, match="chat"):
            await client.complete("x", SamplingParams(json_mode=True))
    assert server.requests == []


async def test_missing_logprobs_in_reply_is_bad_response_not_retried(sleeps: SleepRecorder) -> None:
    async with (
        LoopbackServer(Reply(body=chat_body("x")), Reply(body=chat_body("x"))) as server,
        _client(server, sleeps, max_retries=2) as client,
    ):
        with pytest.raises(BadResponse, match="logprobs"):
            await client.chat(USER, SamplingParams(logprobs=True))
    assert len(server.requests) == 1


def _with_prompt_logprobs(body: dict[str, Any], positions: list[Any]) -> dict[str, Any]:
    body["choices"][0]["prompt_logprobs"] = positions
    return body


async def test_vllm_prompt_logprobs_are_an_opt_in() -> None:
    positions = [
        None,
        {  # the prompt token comes first even when it is not the best candidate
            "17": {"logprob": -2.5, "rank": 3, "decoded_token": " cat"},
            "5": {"logprob": -0.5, "rank": 1, "decoded_token": " dog"},
            "8": {"logprob": -1.5, "rank": 2, "decoded_token": " cow"},
        },
        {"9": {"logprob": -0.1, "rank": 1, "decoded_token": " sat"}},
    ]
    reply = Reply(body=_with_prompt_logprobs(completion_body("."), positions))
    async with LoopbackServer(reply, Reply(body=completion_body("."))) as server:
        async with _client(server) as plain:
            assert not plain.capabilities.prompt_logprobs
            with pytest.raises(UnsupportedRequest, match="prompt_logprobs"):
                await plain.complete("A cat sat", SamplingParams(prompt_logprobs=1))
        async with _client(server, vllm_prompt_logprobs=True) as client:
            assert client.capabilities.prompt_logprobs
            with pytest.raises(UnsupportedRequest, match="complete"):
                await client.chat(USER, SamplingParams(prompt_logprobs=1))
            gen = await client.complete("A cat sat", SamplingParams(max_tokens=1, prompt_logprobs=2))
            without = await client.complete("A cat sat", GREEDY)
    assert server.requests[0].json["prompt_logprobs"] == 2
    assert "prompt_logprobs" not in server.requests[1].json
    assert gen.prompt_logprobs is not None and gen.prompt_logprobs[0] is None
    cat, sat = gen.prompt_logprobs[1], gen.prompt_logprobs[2]
    assert cat is not None and (cat.token, cat.logprob) == (" cat", -2.5)
    assert [(t.token, t.logprob) for t in cat.top_logprobs] == [(" dog", -0.5), (" cow", -1.5)]
    assert sat is not None and (sat.token, sat.logprob) == (" sat", -0.1)
    assert without.prompt_logprobs is None


async def test_missing_prompt_logprobs_in_reply_is_bad_response_not_retried(sleeps: SleepRecorder) -> None:
    async with (
        LoopbackServer(Reply(body=completion_body(".")), Reply(body=completion_body("."))) as server,
        _client(server, sleeps, max_retries=2, vllm_prompt_logprobs=True) as client,
    ):
        with pytest.raises(BadResponse, match="prompt_logprobs"):
            await client.complete("x", SamplingParams(prompt_logprobs=1))
    assert len(server.requests) == 1


# ------------------------------------------------------------------ retries


@pytest.mark.parametrize(
    ("first", "expected_delay"),
    [
        (rate_limited(retry_after="2"), 2.0),
        (rate_limited(retry_after="0.75"), 0.75),
        (rate_limited(retry_after_ms="1500"), 1.5),
        (rate_limited(retry_after="-3"), "backoff"),
        (rate_limited(retry_after="nan"), "backoff"),
        (rate_limited(retry_after="inf"), "backoff"),
        (rate_limited(retry_after="3600"), "backoff"),  # over the 120 s cap
        (rate_limited(retry_after="Mon, 99 Foo 2024 00:00:00 GMT"), "backoff"),
        (rate_limited(), "backoff"),
        (error_reply(500, "internal"), "backoff"),
        (error_reply(503, "overloaded"), "backoff"),
        (error_reply(408), "backoff"),
        (error_reply(409), "backoff"),
        (Reply(status=200, body=b"{not json"), "backoff"),
        (Reply(status=200, body={"id": "x", "object": "chat.completion"}), "backoff"),  # no choices
        (Truncated(), "backoff"),
        (Reset(), "backoff"),
    ],
)
async def test_one_failure_then_success(first: Any, expected_delay: Any, sleeps: SleepRecorder) -> None:
    async with (
        LoopbackServer(first, Reply(body=chat_body("recovered"))) as server,
        _client(server, sleeps, max_retries=2) as client,
    ):
        gen = await client.chat(USER, GREEDY)
    assert gen.text == "recovered"
    assert len(server.requests) == 2
    (delay,) = sleeps.delays
    if expected_delay == "backoff":
        assert 0.375 <= delay <= 0.5
    else:
        assert delay == expected_delay


async def test_retry_after_http_date(sleeps: SleepRecorder) -> None:
    date = formatdate(time.time() + 3, usegmt=True)  # whole seconds, so 2 < delay <= 3
    async with (
        LoopbackServer(rate_limited(retry_after=date), Reply(body=chat_body("ok"))) as server,
        _client(server, sleeps, max_retries=1) as client,
    ):
        await client.chat(USER, GREEDY)
    (delay,) = sleeps.delays
    assert 1.5 < delay <= 3.0


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (rate_limited(retry_after="1"), RateLimited),
        (error_reply(500), ServerError),
        (error_reply(502), ServerError),
    ],
)
async def test_persistent_failure_exhausts_retries(reply: Reply, error: type, sleeps: SleepRecorder) -> None:
    async with LoopbackServer(default=reply) as server, _client(server, sleeps, max_retries=2) as client:
        with pytest.raises(error) as info:
            await client.chat(USER, GREEDY)
    assert len(server.requests) == 3
    assert len(sleeps.delays) == 2
    assert info.value.attempts == 3
    assert info.value.status == reply.status


async def test_backoff_grows_between_retries(sleeps: SleepRecorder) -> None:
    async with (
        LoopbackServer(default=error_reply(503)) as server,
        _client(server, sleeps, max_retries=3) as client,
    ):
        with pytest.raises(ServerError):
            await client.chat(USER, GREEDY)
    assert len(server.requests) == 4
    for delay, base in zip(sleeps.delays, [0.5, 1.0, 2.0], strict=True):
        assert 0.75 * base <= delay <= base


async def test_garbage_200_is_retried_only_once(sleeps: SleepRecorder) -> None:
    async with (
        LoopbackServer(default=Reply(body=b"<html>proxy error</html>")) as server,
        _client(server, sleeps, max_retries=5) as client,
    ):
        with pytest.raises(BadResponse, match="proxy error") as info:
            await client.chat(USER, GREEDY)
    assert len(server.requests) == 2
    assert info.value.__cause__ is not None  # chained to the validation error


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_client_errors_are_not_retried(status: int, sleeps: SleepRecorder) -> None:
    async with (
        LoopbackServer(default=error_reply(status, "nope", code="invalid")) as server,
        _client(server, sleeps, max_retries=2) as client,
    ):
        with pytest.raises(RequestRejected, match=f"HTTP {status}: nope") as info:
            await client.chat(USER, GREEDY)
    assert len(server.requests) == 1
    assert sleeps.delays == []
    assert info.value.status == status


async def test_x_should_retry_header_overrides_status(sleeps: SleepRecorder) -> None:
    script = [
        error_reply(400, headers={"x-should-retry": "true"}),
        Reply(body=chat_body("ok")),
        error_reply(503, headers={"x-should-retry": "false"}),
    ]
    async with LoopbackServer(*script) as server, _client(server, sleeps, max_retries=2) as client:
        assert (await client.chat(USER, GREEDY)).text == "ok"
        with pytest.raises(ServerError):
            await client.chat(USER, GREEDY)
    assert len(server.requests) == 3
    assert len(sleeps.delays) == 1


async def test_hang_times_out_and_is_retried(sleeps: SleepRecorder) -> None:
    async with (
        LoopbackServer(Hang(5.0), Reply(body=chat_body("ok"))) as server,
        _client(server, sleeps, max_retries=1, timeout=0.2) as client,
    ):
        start = time.monotonic()
        assert (await client.chat(USER, GREEDY)).text == "ok"
    assert time.monotonic() - start < 2.0
    assert len(server.requests) == 2 and len(sleeps.delays) == 1


async def test_timeout_is_typed_and_chained() -> None:
    async with LoopbackServer(Hang(5.0)) as server, _client(server, timeout=0.2) as client:
        with pytest.raises(Timeout) as info:
            await client.chat(USER, GREEDY)
    assert type(info.value).__module__ == "sae_interp.clients.errors"
    assert info.value.__cause__ is not None


async def test_connection_refused_is_connection_failed(sleeps: SleepRecorder) -> None:
    async with LoopbackServer() as server:
        url = server.base_url
    client = OpenAICompatible(url, "m", max_retries=1, sleep=sleeps)  # the port is closed now
    async with client:
        with pytest.raises(ConnectionFailed) as info:
            await client.chat(USER, GREEDY)
    assert len(sleeps.delays) == 1
    assert info.value.attempts == 2


async def test_deadline_bounds_the_whole_call() -> None:
    # Attempt 1 times out at 0.4 s, the jittered backoff (0.375-0.5 s, really waited) ends before
    # 1.0 s, and attempt 2 is cut off by the 1.0 s deadline before its own 0.4 s timeout (which
    # would come at 1.175 s at the earliest; with a 0.3 s timeout and a short draw it came first).
    async with (
        LoopbackServer(default=Hang(5.0)) as server,
        _client(server, max_retries=5, timeout=0.4, deadline=1.0) as client,
    ):
        start = time.monotonic()
        with pytest.raises(DeadlineExceeded) as info:
            await client.chat(USER, GREEDY)
        elapsed = time.monotonic() - start
    assert 0.95 <= elapsed < 1.5
    assert len(server.requests) == 2
    assert isinstance(info.value, Timeout)  # callers catching Timeout see it too


async def test_no_retry_is_started_that_would_end_past_the_deadline(sleeps: SleepRecorder) -> None:
    async with (
        LoopbackServer(default=rate_limited(retry_after="30")) as server,
        _client(server, sleeps, max_retries=5, deadline=10.0) as client,
    ):
        with pytest.raises(RateLimited) as info:
            await client.chat(USER, GREEDY)
    assert len(server.requests) == 1 and sleeps.delays == []
    assert "deadline" in info.value.__notes__[0]


# ------------------------------------------------------------------ concurrency, throttling, isolation


async def test_concurrency_never_exceeds_the_cap() -> None:
    async with LoopbackServer(latency=0.05) as server, _client(server, max_concurrency=3) as client:
        await asyncio.gather(*(client.chat(USER, GREEDY) for _ in range(12)))
    assert len(server.requests) == 12
    assert server.max_in_flight == 3


async def test_requests_per_second_spaces_requests() -> None:
    async with (
        LoopbackServer() as server,
        _client(server, max_concurrency=8, requests_per_second=20) as client,
    ):
        await asyncio.gather(*(client.chat(USER, GREEDY) for _ in range(5)))
    arrivals = sorted(r.arrived for r in server.requests)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.045  # 1/20 s, less a little for clock and scheduling noise
    assert arrivals[-1] - arrivals[0] < 1.0


def _echo_params(request: RecordedRequest) -> Reply:
    body = request.json
    text = json.dumps({k: body.get(k) for k in ("seed", "temperature", "max_tokens", "stop", "logprobs")})
    return Reply(body=chat_body(text), delay=0.01 * (body["seed"] % 5))  # reorder the replies


async def test_per_call_params_do_not_leak_between_concurrent_calls() -> None:
    def params_for(i: int) -> SamplingParams:
        return SamplingParams(
            seed=i, temperature=(i % 3) / 2, max_tokens=i + 1, stop=(f"s{i}",), logprobs=False
        )

    async with (
        LoopbackServer(default=Respond(_echo_params)) as server,
        _client(server, max_concurrency=6) as client,
    ):
        gens = await asyncio.gather(*(client.chat(USER, params_for(i)) for i in range(30)))
    assert server.max_in_flight > 1  # the calls really overlapped
    for i, gen in enumerate(gens):
        assert json.loads(gen.text) == {
            "seed": i,
            "temperature": (i % 3) / 2,
            "max_tokens": i + 1,
            "stop": [f"s{i}"],
            "logprobs": None,
        }


async def test_benchmark_mode_caps_server_side_concurrency() -> None:
    async with (
        LoopbackServer(latency=0.05, max_concurrency=2) as server,
        _client(server, max_concurrency=8) as client,
    ):
        start = time.monotonic()
        await asyncio.gather(*(client.chat(USER, GREEDY) for _ in range(8)))
        elapsed = time.monotonic() - start
    assert server.max_in_flight == 8  # all arrived; the server served two at a time
    assert elapsed >= 4 * 0.05


# ------------------------------------------------------------------ secrets


KEY = "sk-loopback-SECRET-0123456789abcdef"


async def test_api_key_sent_but_never_shown(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, sleeps: SleepRecorder
) -> None:
    monkeypatch.setenv("LOOPBACK_TEST_KEY", KEY)
    script = [
        # A provider that echoes the key in its 401 message, as OpenAI does with a partial key.
        error_reply(500, f"upstream rejected key {KEY}"),
        error_reply(401, f"Incorrect API key provided: {KEY}"),
        Reply(body=f'{{"oops": "{KEY}"'.encode()),
        Reply(body=f'{{"oops": "{KEY}"'.encode()),
    ]
    errors: list[BaseException] = []
    with caplog.at_level(logging.DEBUG):
        async with LoopbackServer(*script) as server:
            client = _client(server, sleeps, api_key_env="LOOPBACK_TEST_KEY", max_retries=1)
            async with client:
                for _ in range(2):
                    with pytest.raises((RequestRejected, BadResponse)) as info:
                        await client.chat(USER, GREEDY)
                    errors.append(info.value)
            shown = [repr(client), str(client)]
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert len(server.requests) == 4
    for err in errors:
        chain: list[BaseException] = []
        cur: BaseException | None = err
        while cur is not None:
            chain.append(cur)
            cur = cur.__cause__ or cur.__context__
        shown += [str(e) for e in chain] + [repr(e) for e in chain] + list(getattr(err, "__notes__", []))
    assert "[redacted]" in str(errors[0])
    assert caplog.records  # the retry was logged
    for text in [*shown, caplog.text]:
        assert KEY not in text


async def test_missing_key_variable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from sae_interp.clients import MissingAPIKey

    monkeypatch.delenv("LOOPBACK_TEST_KEY", raising=False)
    with pytest.raises(MissingAPIKey, match="LOOPBACK_TEST_KEY"):
        OpenAICompatible("http://127.0.0.1:9/v1", "m", api_key_env="LOOPBACK_TEST_KEY")
    monkeypatch.setenv("LOOPBACK_TEST_KEY", "  ")
    with pytest.raises(MissingAPIKey, match="unset or empty"):
        OpenAICompatible("http://127.0.0.1:9/v1", "m", api_key_env="LOOPBACK_TEST_KEY")


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        (Reset(), ConnectionFailed),
        (Truncated(), BadResponse),
        (Reply(body=b"{not json"), BadResponse),
        (Reply(body={"id": "x"}), BadResponse),
        (Reply(body={"choices": [{"message": {"role": "assistant", "content": None}}]}), BadResponse),
        (Reply(body={"error": {"message": "upstream down", "code": 502}}), ServerError),  # OpenRouter style
        (Hang(5.0), Timeout),
    ],
)
async def test_each_failure_maps_to_its_type(behaviour: Any, error: type) -> None:
    async with LoopbackServer(behaviour) as server, _client(server, timeout=0.2) as client:
        with pytest.raises(error) as info:
            await client.chat(USER, GREEDY)
    assert type(info.value) is error
    assert info.value.__cause__ is not None or isinstance(info.value, ServerError | BadResponse)

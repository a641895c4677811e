"""A client for any server that speaks the OpenAI HTTP API (OpenAI, OpenRouter, vLLM, llama.cpp).

One `aiohttp.ClientSession` (one connection pool) per client, made on first use (aiohttp binds a
session to the running event loop) and shared by every concurrent call. Each attempt takes a slot
from a semaphore (`max_concurrency`) and then a token from an `asyncio_throttle.Throttler`
(`requests_per_second`), so a retry waiting out its backoff holds no slot. Retries, their delays and
the per-call deadline come from `clients._retry`, the only retry layer (aiohttp does not retry).

Why aiohttp and not httpx: httpx's pool (httpcore) rescans every pooled connection, polling each
socket, whenever a request starts or ends, so its CPU cost per request grows with the concurrency.
Against a loopback server at 256 requests in flight we measured 36.8 ms of client CPU per request
with httpx 0.28, 7.2 ms with httpx2 2.16 and 0.88 ms with aiohttp 3.14: at a vLLM server's
concurrency, httpx alone would saturate a 2-core machine below the server's throughput.

Boundary decisions:
- The API key is read from a named environment variable when the client is built and lives only in
  the connection pool's default headers. It is not part of `repr`, and every message built from a
  server's reply is redacted, since some providers echo the key back in 401 errors.
- A 2xx reply whose body is not the expected JSON (malformed, truncated, no `choices`) is a
  `BadResponse`, retried once. A reply without logprobs when logprobs were asked for is a
  `BadResponse` that is not retried: the server ignores the field and would do so again.
- `prompt_logprobs` is not an OpenAI field. With `vllm_prompt_logprobs=True` the client sends vLLM's
  extension of that name on `complete` (not chat) and reads the reply's per-position candidate dicts;
  by default it does not offer prompt logprobs (its capability is False). A reply without them is a
  `BadResponse` that is not retried, as for logprobs.
- JSON mode is offered on chat only: the legacy completions endpoint has no `response_format`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Self, TypeVar

import aiohttp
import orjson
from asyncio_throttle.throttler import Throttler
from pydantic import BaseModel, ValidationError

from sae_interp.clients._retry import RetryPolicy, Sleep, call_with_retries, error_for_status
from sae_interp.clients.base import (
    ClientCapabilities,
    Generation,
    Message,
    SamplingParams,
    TokenLogprob,
    TokenUsage,
    TopLogprob,
)
from sae_interp.clients.errors import (
    BadResponse,
    ConnectionFailed,
    MissingAPIKey,
    Timeout,
    UnsupportedRequest,
)
from sae_interp.clients.protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatMessage,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    ErrorResponse,
    JsonSchemaFormat,
    ResponseFormat,
    UsageInfo,
)

logger = logging.getLogger(__name__)

__all__ = ["OPENROUTER_BASE_URL", "OPENROUTER_KEY_ENV", "OpenAICompatible", "OpenRouter"]

OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
OPENROUTER_KEY_ENV = "OPENROUTER_API_KEY"
_EXCERPT_CHARS = 200
_ResponseT = TypeVar("_ResponseT", bound=BaseModel)


def _read_api_key(env_var: str | None, owner: str, hint: str = "") -> str | None:
    if env_var is None:
        return None
    key = os.environ.get(env_var, "").strip()
    if not key:
        raise MissingAPIKey(f"{owner}: environment variable {env_var} is unset or empty; export it{hint}")
    return key


class OpenAICompatible:
    """Chat and legacy completions against an OpenAI-compatible HTTP server.

    Example:
        >>> async with OpenAICompatible("http://127.0.0.1:8000/v1", "qwen") as client:
        ...     gen = await client.chat([{"role": "user", "content": "Hi"}], SamplingParams(max_tokens=8))
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        max_concurrency: int = 8,
        requests_per_second: float | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        deadline: float | None = 600.0,
        max_retries: int = 2,
        retry_after_cap: float = 120.0,
        extra_headers: Mapping[str, str] | None = None,
        capabilities: ClientCapabilities | None = None,
        vllm_prompt_logprobs: bool = False,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """Build the client; reads the API key from the environment now.

        Args:
            base_url: the API root, e.g. "http://127.0.0.1:8000/v1" (paths "/chat/completions" and
                "/completions" are appended).
            model: the model name sent with every request.
            api_key_env: name of the environment variable holding the key; None sends no key.
            max_concurrency: requests in flight at most.
            requests_per_second: start at most this many requests per second; None = no limit.
            timeout: seconds one attempt may wait for the server (between bytes of the reply).
            connect_timeout: seconds to open a connection.
            deadline: seconds one call may take across retries and waits; None = no limit.
            max_retries: retries after the first attempt.
            retry_after_cap: longest server-requested Retry-After honoured (s).
            extra_headers: sent with every request (e.g. attribution headers).
            capabilities: what the server supports; default: logprobs with up to 20 alternatives and
                JSON mode, no prompt logprobs (its `prompt_logprobs` is replaced by the next argument).
            vllm_prompt_logprobs: the server is vLLM: ask it for prompt logprobs (its extension) when
                a call's params want them, which the surprisal scorer needs.
            sleep: waits between retries (tests pass a recorder).

        Raises:
            MissingAPIKey: `api_key_env` is set but the variable is unset or empty.
            ValueError: a numeric argument is out of range.
        """
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if requests_per_second is not None and not requests_per_second > 0:
            raise ValueError(f"requests_per_second must be > 0 or None, got {requests_per_second}")
        if not (timeout > 0 and connect_timeout > 0):
            raise ValueError(f"timeout and connect_timeout must be > 0, got {timeout} and {connect_timeout}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.requests_per_second = requests_per_second
        self.timeout = timeout
        self._policy = RetryPolicy(
            max_retries=max_retries, retry_after_cap=retry_after_cap, deadline=deadline
        )
        self._capabilities = dataclasses.replace(
            capabilities or ClientCapabilities(logprobs=True, max_top_logprobs=20, json_mode=True),
            max_concurrency=max_concurrency,
            prompt_logprobs=vllm_prompt_logprobs,
        )
        self._sleep = sleep
        self._slots = asyncio.Semaphore(max_concurrency)
        # One token per 1/rps seconds spaces requests evenly instead of letting a burst of `rps`
        # leave at once at the start of every second.
        self._throttler = (
            Throttler(rate_limit=1, period=1.0 / requests_per_second) if requests_per_second else None
        )
        headers = {"accept": "application/json", "content-type": "application/json"}
        headers.update((name.lower(), value) for name, value in (extra_headers or {}).items())
        key = _read_api_key(api_key_env, type(self).__name__, self._key_hint())
        if key is not None:
            headers["authorization"] = f"Bearer {key}"
        self._headers = headers
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=min(connect_timeout, timeout), sock_read=timeout
        )
        self._session: aiohttp.ClientSession | None = None

    def _key_hint(self) -> str:
        return ""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r}, "
            f"api_key_env={self.api_key_env!r}, max_concurrency={self.max_concurrency})"
        )

    @property
    def capabilities(self) -> ClientCapabilities:
        """What this client offers; `max_concurrency` matches the constructor argument."""
        return self._capabilities

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()

    def _pool(self) -> aiohttp.ClientSession:
        """The connection pool, made on first use: aiohttp binds it to the running event loop."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=self.max_concurrency),
                trust_env=True,  # HTTP(S)_PROXY / NO_PROXY from the environment, as curl and httpx do
            )
        return self._session

    async def chat(self, messages: Sequence[Message], params: SamplingParams) -> Generation:
        """Generate the assistant's reply to `messages` (POST /chat/completions).

        Args:
            messages: the conversation so far.
            params: sampling settings for this call only.

        Returns:
            The reply text, finish reason, usage and (when asked) per-token logprobs.

        Raises:
            UnsupportedRequest: `params` asks for prompt logprobs (never on chat) or more
                alternatives than allowed.
            ClientError: after retries; see `clients.errors` for the subclasses.
        """
        self._capabilities.check(params, client=repr(self))
        if params.prompt_logprobs:
            raise UnsupportedRequest(f"{self!r}: prompt logprobs are only available through complete()")
        payload = _chat_payload(self.model, messages, params)
        describe = "POST /chat/completions"
        return await self._post(
            "/chat/completions", payload, lambda body: self._parse_chat(body, params, describe)
        )

    async def complete(self, prompt: str, params: SamplingParams) -> Generation:
        """Continue `prompt` as raw text (POST /completions, the legacy endpoint).

        Args:
            prompt: the text to continue; no chat template is applied.
            params: sampling settings for this call only (no JSON mode).

        Returns:
            The continuation, finish reason, usage and (when asked) per-token and prompt logprobs.

        Raises:
            UnsupportedRequest: `params` asks for JSON mode, prompt logprobs (without
                `vllm_prompt_logprobs`) or too many alternatives.
            ClientError: after retries; see `clients.errors` for the subclasses.
        """
        self._capabilities.check(params, client=repr(self))
        if params.wants_json:
            raise UnsupportedRequest(f"{self!r}: JSON mode is only available through chat()")
        payload = _completion_payload(self.model, prompt, params)
        describe = "POST /completions"
        return await self._post(
            "/completions", payload, lambda body: self._parse_completion(body, params, describe)
        )

    # ------------------------------------------------------------ transport

    async def _post(self, path: str, payload: bytes, parse: Callable[[bytes], Generation]) -> Generation:
        describe = f"POST {path}"

        async def attempt() -> Generation:
            async with self._slots:
                if self._throttler is not None:
                    await self._throttler.acquire()
                status, headers, body = await self._exchange(path, payload, describe)
            if not 200 <= status < 300:
                raise error_for_status(status, self._error_message(describe, status, body), headers)
            return parse(body)

        return await call_with_retries(attempt, policy=self._policy, describe=describe, sleep=self._sleep)

    async def _exchange(
        self, path: str, payload: bytes, describe: str
    ) -> tuple[int, Mapping[str, str], bytes]:
        try:
            response = await self._pool().post(self.base_url + path, data=payload)
        except TimeoutError as err:  # aiohttp's connect and read timeouts are TimeoutErrors
            raise Timeout(f"{describe}: no reply within {self.timeout} s ({type(err).__name__})") from err
        except aiohttp.ClientError as err:  # refused, reset, closed or garbled before the status line
            raise ConnectionFailed(self._redact(f"{describe}: {type(err).__name__}: {err}")) from err
        async with response:
            try:
                body = await response.read()
            except TimeoutError as err:
                raise Timeout(f"{describe}: body not complete within {self.timeout} s") from err
            except aiohttp.ClientError as err:
                # The status line arrived, so the server answered: a cut-off body is a bad reply.
                raise BadResponse(
                    self._redact(f"{describe}: HTTP {response.status} body cut off ({type(err).__name__})"),
                    status=response.status,
                ) from err
        return response.status, response.headers, body

    def _redact(self, text: str) -> str:
        auth = self._headers.get("authorization")
        key = auth.removeprefix("Bearer ") if auth else ""
        return text.replace(key, "[redacted]") if key else text

    def _excerpt(self, body: bytes) -> str:
        return self._redact(body[:_EXCERPT_CHARS].decode("utf-8", "replace"))

    def _error_message(self, describe: str, status: int, body: bytes) -> str:
        try:
            info = ErrorResponse.model_validate_json(body).error
            detail = f"{info.message} (type={info.type}, code={info.code})"
        except ValidationError:
            detail = repr(self._excerpt(body))
        return self._redact(f"{describe}: HTTP {status}: {detail}")

    # ------------------------------------------------------------ parsing

    def _validate(self, model: type[_ResponseT], body: bytes, describe: str) -> _ResponseT:
        try:
            return model.model_validate_json(body)
        except ValidationError as err:
            # Summarise without the input values: pydantic's own message quotes the body, which
            # may hold the key (so the original is neither kept as __cause__ nor as __context__).
            problems = [
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in err.errors(include_url=False, include_input=False)
            ]
        self._raise_embedded_error(body, describe)
        cause = ValueError(self._redact("; ".join(problems)))
        raise BadResponse(
            f"{describe}: unusable 2xx reply ({problems[0]}); starts {self._excerpt(body)!r}"
        ) from cause

    def _raise_embedded_error(self, body: bytes, describe: str) -> None:
        """Some proxies (OpenRouter) report upstream failures as a 200 with an `error` object."""
        try:
            info = ErrorResponse.model_validate_json(body).error
        except ValidationError:
            return
        message = self._redact(f"{describe}: error inside a 2xx reply: {info.message} (code={info.code})")
        if isinstance(info.code, int) and 400 <= info.code < 600:
            raise error_for_status(info.code, message, {})
        raise BadResponse(message)

    def _parse_chat(self, body: bytes, params: SamplingParams, describe: str) -> Generation:
        choice_response = self._validate(ChatCompletionResponse, body, describe)
        choice = choice_response.choices[0]
        if choice.message.content is None:
            raise BadResponse(f"{describe}: the reply has no message content; starts {self._excerpt(body)!r}")
        logprobs = None
        if choice.logprobs is not None and choice.logprobs.content is not None:
            logprobs = tuple(
                TokenLogprob(
                    token=entry.token,
                    logprob=entry.logprob,
                    top_logprobs=tuple(TopLogprob(t.token, t.logprob) for t in entry.top_logprobs),
                )
                for entry in choice.logprobs.content
            )
        _check_logprobs_present(logprobs, params, describe)
        return Generation(
            text=choice.message.content,
            finish_reason=choice.finish_reason,
            logprobs=logprobs,
            usage=_usage(choice_response.usage),
        )

    def _parse_completion(self, body: bytes, params: SamplingParams, describe: str) -> Generation:
        response = self._validate(CompletionResponse, body, describe)
        choice = response.choices[0]
        logprobs = None
        if choice.logprobs is not None:
            lp = choice.logprobs
            tops = lp.top_logprobs if lp.top_logprobs is not None else [None] * len(lp.tokens)
            if not len(lp.tokens) == len(lp.token_logprobs) == len(tops):
                raise BadResponse(f"{describe}: logprobs lists differ in length: {self._excerpt(body)!r}")
            entries: list[TokenLogprob] = []
            for token, logprob, top in zip(lp.tokens, lp.token_logprobs, tops, strict=True):
                if logprob is None:
                    raise BadResponse(f"{describe}: token {token!r} has a null logprob")
                alternatives = sorted((top or {}).items(), key=lambda kv: kv[1], reverse=True)
                entries.append(
                    TokenLogprob(
                        token=token,
                        logprob=logprob,
                        top_logprobs=tuple(TopLogprob(t, v) for t, v in alternatives),
                    )
                )
            logprobs = tuple(entries)
        _check_logprobs_present(logprobs, params, describe)
        return Generation(
            text=choice.text,
            finish_reason=choice.finish_reason,
            logprobs=logprobs,
            prompt_logprobs=_prompt_logprobs(choice, params, describe) if params.prompt_logprobs else None,
            usage=_usage(response.usage),
        )


def _prompt_logprobs(
    choice: CompletionChoice, params: SamplingParams, describe: str
) -> tuple[TokenLogprob | None, ...]:
    """vLLM's prompt logprobs: per position, the prompt token (each dict's first entry) and the top
    `params.prompt_logprobs` candidates by logprob.

    Raises:
        BadResponse: (not retried) the reply has none, or a position has no decoded token text.
    """
    if choice.prompt_logprobs is None:
        raise BadResponse(
            f"{describe}: prompt_logprobs were asked for but the reply has none (is the server vLLM?)",
            retryable=False,
        )
    entries: list[TokenLogprob | None] = []
    for position in choice.prompt_logprobs:
        if position is None:
            entries.append(None)
            continue
        candidates = list(position.values())
        if not candidates or any(c.decoded_token is None for c in candidates):
            raise BadResponse(
                f"{describe}: a prompt position has no candidates or no decoded token", retryable=False
            )
        best = sorted(candidates, key=lambda c: c.logprob, reverse=True)[: params.prompt_logprobs]
        entries.append(
            TokenLogprob(
                token=candidates[0].decoded_token or "",
                logprob=candidates[0].logprob,
                top_logprobs=tuple(TopLogprob(c.decoded_token or "", c.logprob) for c in best),
            )
        )
    return tuple(entries)


def _check_logprobs_present(
    logprobs: tuple[TokenLogprob, ...] | None, params: SamplingParams, describe: str
) -> None:
    if params.logprobs and logprobs is None:
        # Not retried: a server that ignores the field ignores it again. Scorers must not get None.
        raise BadResponse(
            f"{describe}: logprobs were asked for but the reply has none (does the server support them?)",
            retryable=False,
        )


def _usage(usage: UsageInfo | None) -> TokenUsage | None:
    return None if usage is None else TokenUsage(usage.prompt_tokens, usage.completion_tokens)


def _response_format(params: SamplingParams) -> ResponseFormat | None:
    if params.json_schema is not None:
        schema = JsonSchemaFormat.model_validate({"name": "response", "schema": dict(params.json_schema)})
        return ResponseFormat(type="json_schema", json_schema=schema)
    if params.json_mode:
        return ResponseFormat(type="json_object")
    return None


def _chat_payload(model: str, messages: Sequence[Message], params: SamplingParams) -> bytes:
    request = ChatCompletionRequest(
        model=model,
        messages=[ChatMessage(role=m["role"], content=m["content"]) for m in messages],
        max_tokens=params.max_tokens,
        seed=params.seed,
        stop=list(params.stop) or None,
        temperature=params.temperature,
        top_p=params.top_p,
        logprobs=True if params.logprobs else None,
        top_logprobs=params.top_logprobs if params.logprobs and params.top_logprobs else None,
        response_format=_response_format(params),
    )
    return orjson.dumps(request.model_dump(mode="json", exclude_none=True, by_alias=True))


def _completion_payload(model: str, prompt: str, params: SamplingParams) -> bytes:
    request = CompletionRequest(
        model=model,
        prompt=prompt,
        max_tokens=params.max_tokens,
        seed=params.seed,
        stop=list(params.stop) or None,
        temperature=params.temperature,
        top_p=params.top_p,
        logprobs=params.top_logprobs if params.logprobs else None,
        prompt_logprobs=params.prompt_logprobs or None,
    )
    return orjson.dumps(request.model_dump(mode="json", exclude_none=True, by_alias=True))


class OpenRouter(OpenAICompatible):
    """OpenAICompatible preset for https://openrouter.ai: its URL, key variable and attribution headers.

    OpenRouter uses `HTTP-Referer` and `X-Title` to attribute traffic to an app; both are optional.
    """

    def __init__(
        self,
        model: str,
        *,
        api_key_env: str = OPENROUTER_KEY_ENV,
        base_url: str = OPENROUTER_BASE_URL,
        app_title: str | None = "sae_interp",
        app_url: str | None = None,
        max_concurrency: int = 8,
        requests_per_second: float | None = None,
        timeout: float = 120.0,
        deadline: float | None = 600.0,
        max_retries: int = 2,
        extra_headers: Mapping[str, str] | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """Build the client; see `OpenAICompatible` for the shared arguments.

        Args:
            model: an OpenRouter model id, e.g. "meta-llama/llama-3.1-8b-instruct".
            api_key_env: variable holding the key (required).
            base_url: override only to point at a test server.
            app_title: sent as `X-Title`; None omits it.
            app_url: sent as `HTTP-Referer`; None omits it.
            max_concurrency: see `OpenAICompatible`.
            requests_per_second: see `OpenAICompatible`.
            timeout: see `OpenAICompatible`.
            deadline: see `OpenAICompatible`.
            max_retries: see `OpenAICompatible`.
            extra_headers: added after the attribution headers.
            sleep: see `OpenAICompatible`.

        Raises:
            MissingAPIKey: the variable is unset or empty.
        """
        headers: dict[str, str] = {}
        if app_url is not None:
            headers["HTTP-Referer"] = app_url
        if app_title is not None:
            headers["X-Title"] = app_title
        headers.update(extra_headers or {})
        super().__init__(
            base_url,
            model,
            api_key_env=api_key_env,
            max_concurrency=max_concurrency,
            requests_per_second=requests_per_second,
            timeout=timeout,
            deadline=deadline,
            max_retries=max_retries,
            extra_headers=headers,
            sleep=sleep,
        )

    def _key_hint(self) -> str:
        return " (create a key at https://openrouter.ai/keys)"

"""A scripted OpenAI-compatible HTTP/1.1 server on 127.0.0.1, for client tests and benchmarks.

Runs on `asyncio.start_server` in the caller's event loop; no web framework. Each request takes the
next behaviour from the script (`Reply`, `Hang`, `Truncated`, `Reset`, or a `Respond` callable);
when the script is empty, `default` answers (by default a valid chat or legacy completion reply
chosen by path). Every request is recorded (path, lower-cased headers, JSON body, arrival time),
and the server tracks the most requests it had in flight at once.

Benchmark mode: `LoopbackServer(latency=0.05, max_concurrency=4)` holds every reply `latency`
seconds and serves at most `max_concurrency` at a time, like a batching server with fixed slots.

    async with LoopbackServer(rate_limited(retry_after="1"), Reply(body=chat_body("hi"))) as server:
        client = OpenAICompatible(server.base_url, "m")
        ...
        assert len(server.requests) == 2

Only what the tests need is implemented: Content-Length request bodies (what httpx sends), keep-alive,
no chunked encoding, no TLS. Loops are bounded: one connection serves at most
`MAX_REQUESTS_PER_CONNECTION` requests, and `Hang` sleeps a bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Behaviour",
    "Hang",
    "LoopbackServer",
    "RecordedRequest",
    "Reply",
    "Reset",
    "Respond",
    "SleepRecorder",
    "Truncated",
    "auto_reply",
    "chat_body",
    "completion_body",
    "error_reply",
    "rate_limited",
]

MAX_REQUESTS_PER_CONNECTION = 10_000


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes
    json: Any
    """The body parsed as JSON, or None when it is not JSON."""
    arrived: float
    """`time.monotonic()` when the request was fully read."""


@dataclass(frozen=True)
class Reply:
    """Answer with `status`, `headers` and `body` (a dict/list is sent as JSON) after `delay` s."""

    status: int = 200
    body: bytes | Mapping[str, Any] | Sequence[Any] = b""
    headers: Mapping[str, str] = field(default_factory=dict[str, str])
    delay: float = 0.0


@dataclass(frozen=True)
class Hang:
    """Read the request, send nothing, close after `seconds` (set it past the client's timeout)."""

    seconds: float = 5.0


@dataclass(frozen=True)
class Truncated:
    """Send a 200 whose Content-Length promises `missing` more bytes than `body` has, then close."""

    body: bytes = b'{"choices": [{"message": {"content": "cut'
    missing: int = 100


@dataclass(frozen=True)
class Reset:
    """Close the connection with a TCP reset, without any reply."""


@dataclass(frozen=True)
class Respond:
    """Decide the behaviour from the request (e.g. echo its parameters back)."""

    fn: Callable[[RecordedRequest], Reply | Hang | Truncated | Reset]


Behaviour = Reply | Hang | Truncated | Reset | Respond


# ---------------------------------------------------------------- reply bodies


def chat_body(
    text: str,
    *,
    logprobs: Sequence[tuple[str, float, Sequence[tuple[str, float]]]] | None = None,
    finish_reason: str = "stop",
    usage: tuple[int, int] | None = (5, 1),
    model: str = "loopback",
) -> dict[str, Any]:
    """A /v1/chat/completions reply; `logprobs` items are (token, logprob, [(alt, logprob), ...])."""
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "finish_reason": finish_reason,
    }
    if logprobs is not None:
        choice["logprobs"] = {
            "content": [
                {
                    "token": tok,
                    "logprob": lp,
                    "bytes": list(tok.encode()),
                    "top_logprobs": [{"token": t, "logprob": v, "bytes": None} for t, v in top],
                }
                for tok, lp, top in logprobs
            ]
        }
    return _envelope("chat.completion", model, choice, usage)


def completion_body(
    text: str,
    *,
    logprobs: Sequence[tuple[str, float, Mapping[str, float]]] | None = None,
    finish_reason: str = "length",
    usage: tuple[int, int] | None = (5, 1),
    model: str = "loopback",
) -> dict[str, Any]:
    """A legacy /v1/completions reply; `logprobs` items are (token, logprob, {alt: logprob})."""
    choice: dict[str, Any] = {"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}
    if logprobs is not None:
        offsets = [0]
        for tok, _, _ in logprobs[:-1]:
            offsets.append(offsets[-1] + len(tok))
        choice["logprobs"] = {
            "tokens": [tok for tok, _, _ in logprobs],
            "token_logprobs": [lp for _, lp, _ in logprobs],
            "top_logprobs": [dict(top) for _, _, top in logprobs],
            "text_offset": offsets,
        }
    return _envelope("text_completion", model, choice, usage)


def _envelope(obj: str, model: str, choice: dict[str, Any], usage: tuple[int, int] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "loopback-1",
        "object": obj,
        "created": 0,
        "model": model,
        "system_fingerprint": "loopback",  # an extra field clients must ignore
        "choices": [choice],
    }
    if usage is not None:
        body["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    return body


def error_reply(
    status: int, message: str = "error", *, headers: Mapping[str, str] | None = None, code: Any = None
) -> Reply:
    """An error reply with the OpenAI error body `{"error": {message, type, param, code}}`."""
    body = {"error": {"message": message, "type": "loopback_error", "param": None, "code": code}}
    return Reply(status=status, body=body, headers=dict(headers or {}))


def rate_limited(*, retry_after: str | None = None, retry_after_ms: str | None = None) -> Reply:
    """A 429 carrying `retry-after` and/or `retry-after-ms` exactly as given."""
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["retry-after"] = retry_after
    if retry_after_ms is not None:
        headers["retry-after-ms"] = retry_after_ms
    return error_reply(429, "rate limited", headers=headers, code="rate_limit_exceeded")


def auto_reply(request: RecordedRequest) -> Reply:
    """A valid reply for the request's endpoint: chat shape for /chat/completions, else legacy."""
    if request.path.endswith("/chat/completions"):
        return Reply(body=chat_body("ok"))
    return Reply(body=completion_body("ok"))


class SleepRecorder:
    """Stands in for `asyncio.sleep` in a client under test: records each delay, waits not at all."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


# ---------------------------------------------------------------- server


class LoopbackServer:
    """The server; use as `async with LoopbackServer(*script) as server`."""

    def __init__(
        self,
        *script: Behaviour,
        default: Behaviour = Respond(auto_reply),
        latency: float = 0.0,
        max_concurrency: int | None = None,
    ) -> None:
        """Args:
        script: behaviours for the first requests, in arrival order.
        default: the behaviour once the script is used up.
        latency: seconds every reply is held (benchmark mode).
        max_concurrency: replies served at once at most (benchmark mode); None = unlimited.
        """
        self._script: deque[Behaviour] = deque(script)
        self.default = default
        self.latency = latency
        self._cap = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def base_url(self) -> str:
        """The API root to give a client, e.g. "http://127.0.0.1:PORT/v1"."""
        return f"http://127.0.0.1:{self.port}/v1"

    def push(self, *behaviours: Behaviour) -> None:
        """Append behaviours to the script."""
        self._script.extend(behaviours)

    async def __aenter__(self) -> LoopbackServer:
        self._server = await asyncio.start_server(self._on_connect, host="127.0.0.1", port=0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve_connection(reader, writer))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(MAX_REQUESTS_PER_CONNECTION):
                request = await _read_request(reader)
                if request is None:
                    break
                self.requests.append(request)
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    keep_alive = await self._answer(request, writer)
                finally:
                    self.in_flight -= 1
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away (e.g. it timed out): nothing left to answer
        finally:
            if not writer.transport.is_closing():
                writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    def _next(self, request: RecordedRequest) -> Reply | Hang | Truncated | Reset:
        behaviour = self._script.popleft() if self._script else self.default
        return behaviour.fn(request) if isinstance(behaviour, Respond) else behaviour

    async def _answer(self, request: RecordedRequest, writer: asyncio.StreamWriter) -> bool:
        behaviour = self._next(request)
        if self._cap is not None:
            async with self._cap:
                await asyncio.sleep(self.latency)
                return await _perform(behaviour, writer)
        if self.latency:
            await asyncio.sleep(self.latency)
        return await _perform(behaviour, writer)


async def _read_request(reader: asyncio.StreamReader) -> RecordedRequest | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None  # a clean close between requests, or a head over the stream limit
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    return RecordedRequest(method, path, headers, body, parsed, time.monotonic())


async def _perform(behaviour: Reply | Hang | Truncated | Reset, writer: asyncio.StreamWriter) -> bool:
    """Carry out one behaviour; returns whether the connection stays open."""
    match behaviour:
        case Reply(status=status, body=body, headers=headers, delay=delay):
            if delay:
                await asyncio.sleep(delay)
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            writer.write(_head(status, headers, len(payload)) + payload)
            await writer.drain()
            return True
        case Hang(seconds=seconds):
            await asyncio.sleep(seconds)
            return False
        case Truncated(body=body, missing=missing):
            writer.write(_head(200, {}, len(body) + missing) + body)
            await writer.drain()
            return False
        case Reset():
            sock: socket.socket | None = writer.get_extra_info("socket")
            if sock is not None:  # linger 0: close() sends RST instead of FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False


def _head(status: int, headers: Mapping[str, str], length: int) -> bytes:
    lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}", f"content-length: {length}"]
    if not any(k.lower() == "content-type" for k in headers):
        lines.append("content-type: application/json")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

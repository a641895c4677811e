"""The one retry policy for every client (STYLE rule 13): what to retry, how long to wait, when to stop.

What is retried: timeouts, connection failures, HTTP 408, 409, 429 and >= 500, unless the server
sends `x-should-retry: false` (and anything it marks `x-should-retry: true`). A 2xx reply with an
unusable body (`BadResponse`) is retried once per call. Other 4xx replies are never retried.

How long to wait: the server's Retry-After (`retry-after-ms`, or `retry-after` in seconds or as an
HTTP date) when it is finite and 0 < delay <= `retry_after_cap`; otherwise exponential backoff
`min(backoff_base * 2**n, backoff_max)` for the n-th retry (n from 0), multiplied by a jitter factor
drawn uniformly from [0.75, 1.0] so that clients that failed together do not retry together.

When to stop: after `max_retries` retries, or when the call's `deadline` (seconds, counted from the
first attempt, waiting included) would run out. The attempt in progress is cut off at the deadline;
a retry whose wait would end past the deadline is not started.

`sleep`, `clock` and `rng` are injectable so that tests record delays without waiting.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import TypeVar

from sae_interp.clients.errors import (
    BadResponse,
    ClientError,
    DeadlineExceeded,
    RateLimited,
    RequestRejected,
    ServerError,
)

logger = logging.getLogger(__name__)

__all__ = [
    "RetryPolicy",
    "Sleep",
    "call_with_retries",
    "error_for_status",
    "is_retryable_status",
    "parse_retry_after",
    "retry_delay",
]

Sleep = Callable[[float], Awaitable[None]]
"""An `asyncio.sleep`-like coroutine function; tests pass one that records the delay."""

T = TypeVar("T")

_RETRYABLE_4XX = frozenset({408, 409, 429})


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How a client retries. Defaults follow openai-python's documented behaviour."""

    max_retries: int = 2
    """Retries after the first attempt (0 = try once)."""
    retry_after_cap: float = 120.0
    """Longest server-requested delay we honour (s); longer ones fall back to backoff."""
    backoff_base: float = 0.5
    """Backoff before the first retry (s), doubled for each later one."""
    backoff_max: float = 8.0
    """Longest backoff (s)."""
    deadline: float | None = 600.0
    """Total seconds for one call across attempts and waits; None = no limit."""

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"RetryPolicy.max_retries must be >= 0, got {self.max_retries}")
        for name in ("retry_after_cap", "backoff_base", "backoff_max"):
            value: float = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"RetryPolicy.{name} must be a finite number >= 0, got {value!r}")
        if self.deadline is not None and not (math.isfinite(self.deadline) and self.deadline > 0):
            raise ValueError(f"RetryPolicy.deadline must be > 0 or None, got {self.deadline!r}")


def _finite_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_retry_after(headers: Mapping[str, str], *, now: Callable[[], float] = time.time) -> float | None:
    """The delay (s) a reply asks for, or None when it asks for none we can read.

    Args:
        headers: reply headers; a case-insensitive mapping (aiohttp's CIMultiDictProxy) or lower-case keys.
        now: wall clock (Unix seconds), used for the HTTP-date form.

    Returns:
        Seconds to wait; may be negative or huge (the caller decides whether to honour it).
        None for absent, malformed, NaN or infinite values.
    """
    if (raw_ms := headers.get("retry-after-ms")) is not None and (ms := _finite_float(raw_ms)) is not None:
        return ms / 1000.0
    raw = headers.get("retry-after")
    if raw is None:
        return None
    if (seconds := _finite_float(raw)) is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" dates parse as naive; RFC 9110 dates are always GMT
        when = when.replace(tzinfo=UTC)
    return when.timestamp() - now()


def retry_delay(
    retry_index: int, retry_after: float | None, policy: RetryPolicy, rng: Callable[[], float]
) -> float:
    """Seconds to wait before retry number `retry_index` (0 for the first retry).

    Args:
        retry_index: how many retries came before this one.
        retry_after: what the server asked for (`parse_retry_after`), or None.
        policy: the caps and backoff constants.
        rng: returns a float in [0, 1); sets the jitter.

    Returns:
        `retry_after` when 0 < retry_after <= policy.retry_after_cap, else jittered backoff.
    """
    if retry_after is not None and 0 < retry_after <= policy.retry_after_cap:
        return retry_after
    backoff = min(policy.backoff_base * 2.0**retry_index, policy.backoff_max)
    return backoff * (1.0 - 0.25 * rng())


def is_retryable_status(status: int, headers: Mapping[str, str]) -> bool:
    """Whether an HTTP error status is worth retrying; `x-should-retry` from the server wins."""
    flag = headers.get("x-should-retry", "").strip().lower()
    if flag in ("true", "false"):
        return flag == "true"
    return status in _RETRYABLE_4XX or status >= 500


def error_for_status(
    status: int, message: str, headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> ClientError:
    """The typed error for a non-2xx reply, carrying its Retry-After and retryability.

    Args:
        status: the HTTP status (not 2xx).
        message: what to report (already redacted by the caller).
        headers: the reply's headers.
        now: wall clock for HTTP-date Retry-After values.
    """
    if status == 429:
        cls: type[ClientError] = RateLimited
    elif status in _RETRYABLE_4XX or status >= 500:
        cls = ServerError
    else:
        cls = RequestRejected
    return cls(
        message,
        status=status,
        retry_after=parse_retry_after(headers, now=now),
        retryable=is_retryable_status(status, headers),
    )


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    describe: str,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: Callable[[], float] = random.random,
) -> T:
    """Run `attempt` until it succeeds, retrying `ClientError`s the policy allows.

    Args:
        attempt: sends one request; raises a `ClientError` subclass on failure.
        policy: retry count, delays and deadline.
        describe: what is being done, for log lines and messages (e.g. "POST /chat/completions").
        sleep: waits between attempts.
        clock: monotonic seconds, for the deadline.
        rng: jitter source.

    Returns:
        What `attempt` returned.

    Raises:
        ClientError: the last attempt's error (its `attempts` says how many were made), or
            `DeadlineExceeded` when the deadline cut an attempt off.
    """
    start = clock()
    bad_responses = 0
    for retry_index in range(policy.max_retries + 1):
        remaining = None if policy.deadline is None else policy.deadline - (clock() - start)
        scope = asyncio.timeout(remaining)
        try:
            async with scope:
                return await attempt()
        except TimeoutError as err:
            if not scope.expired():
                raise
            raise DeadlineExceeded(
                f"{describe}: deadline of {policy.deadline} s ran out during attempt {retry_index + 1}"
            ) from err
        except ClientError as err:
            err.attempts = retry_index + 1
            bad_responses += isinstance(err, BadResponse)
            if not err.retryable or retry_index == policy.max_retries or bad_responses > 1:
                raise
            delay = retry_delay(retry_index, err.retry_after, policy, rng)
            if policy.deadline is not None and clock() - start + delay >= policy.deadline:
                err.add_note(f"not retried: a {delay:.2f} s wait would pass the {policy.deadline} s deadline")
                logger.info("%s failed (%s); not retrying: the deadline would pass", describe, err)
                raise
            logger.info(
                "%s failed (%s); retry %d of %d in %.2f s",
                describe,
                err,
                retry_index + 1,
                policy.max_retries,
                delay,
            )
            await sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")

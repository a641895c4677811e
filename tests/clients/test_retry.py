"""The retry policy on its own: Retry-After parsing, delay choice, status rules, the retry loop."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from sae_interp.clients import _retry
from sae_interp.clients._retry import (
    RetryPolicy,
    call_with_retries,
    error_for_status,
    is_retryable_status,
    parse_retry_after,
    retry_delay,
)
from sae_interp.clients.errors import (
    BadResponse,
    ClientError,
    DeadlineExceeded,
    RateLimited,
    RequestRejected,
    ServerError,
)

from .loopback import SleepRecorder

NOW = 1_700_000_000.0  # frozen wall clock for HTTP-date cases


def _http_date(offset: float) -> str:
    return format_datetime(datetime.fromtimestamp(NOW + offset, tz=UTC), usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "-2"}, -2.0),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "-inf"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "Fri, 32 Foo 2023 99:99:99 GMT"}, None),
        ({"retry-after": _http_date(20)}, 20.0),
        ({"retry-after": _http_date(-20)}, -20.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # ms wins
        ({"retry-after-ms": "nan", "retry-after": "9"}, 9.0),  # unreadable ms falls through
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=lambda: NOW) == expected


@pytest.mark.parametrize(
    ("retry_after", "honoured"),
    [
        (3.0, True),
        (0.25, True),
        (120.0, True),
        (120.5, False),  # over the cap
        (1e9, False),  # huge
        (0.0, False),
        (-5.0, False),
        (None, False),
    ],
)
def test_retry_delay_honours_retry_after_only_within_cap(retry_after: float | None, honoured: bool) -> None:
    policy = RetryPolicy()
    delay = retry_delay(0, retry_after, policy, rng=lambda: 0.0)
    assert delay == (retry_after if honoured else 0.5)


@pytest.mark.parametrize("header", ["nan", "inf", "-1", "1e9", "Fri, 32 Foo 2023 99:99:99 GMT"])
def test_unusable_header_end_to_end_falls_back_to_backoff(header: str) -> None:
    after = parse_retry_after({"retry-after": header}, now=lambda: NOW)
    assert retry_delay(1, after, RetryPolicy(), rng=lambda: 0.0) == 1.0


def test_backoff_doubles_caps_and_jitters_down_by_at_most_a_quarter() -> None:
    policy = RetryPolicy()
    no_jitter = [retry_delay(i, None, policy, rng=lambda: 0.0) for i in range(7)]
    assert no_jitter == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    most_jitter = [retry_delay(i, None, policy, rng=lambda: 0.999999) for i in range(3)]
    assert most_jitter == pytest.approx([0.375, 0.75, 1.5], rel=1e-5)


def test_retry_after_cap_is_configurable() -> None:
    assert retry_delay(0, 30.0, RetryPolicy(retry_after_cap=10.0), rng=lambda: 0.0) == 0.5


@pytest.mark.parametrize(
    ("status", "headers", "retryable"),
    [
        (400, {}, False),
        (401, {}, False),
        (403, {}, False),
        (404, {}, False),
        (422, {}, False),
        (408, {}, True),
        (409, {}, True),
        (429, {}, True),
        (500, {}, True),
        (503, {}, True),
        (503, {"x-should-retry": "false"}, False),
        (400, {"x-should-retry": "true"}, True),
        (400, {"x-should-retry": "maybe"}, False),
    ],
)
def test_retryable_statuses(status: int, headers: dict[str, str], retryable: bool) -> None:
    assert is_retryable_status(status, headers) is retryable
    assert error_for_status(status, "m", headers).retryable is retryable


def test_error_types_by_status() -> None:
    assert type(error_for_status(429, "m", {"retry-after": "2"})) is RateLimited
    assert error_for_status(429, "m", {"retry-after": "2"}).retry_after == 2.0
    assert type(error_for_status(502, "m", {})) is ServerError
    assert type(error_for_status(408, "m", {})) is ServerError
    assert type(error_for_status(401, "m", {})) is RequestRejected


class _Script:
    """An attempt function that raises the scripted errors in turn, then returns "done"."""

    def __init__(self, *errors: ClientError) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


async def test_loop_retries_then_succeeds_and_logs_lazily(
    sleeps: SleepRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    attempt = _Script(ServerError("boom", status=500), RateLimited("slow", status=429, retry_after=3.0))
    with caplog.at_level(logging.INFO, logger=_retry.__name__):
        result = await call_with_retries(
            attempt, policy=RetryPolicy(), describe="POST /x", sleep=sleeps, rng=lambda: 0.0
        )
    assert result == "done"
    assert attempt.calls == 3
    assert sleeps.delays == [0.5, 3.0]
    retries = [r for r in caplog.records if r.name == _retry.__name__]
    assert len(retries) == 2
    assert all(r.levelno == logging.INFO and r.args for r in retries)  # %-style args, not f-strings
    assert "retry 2 of 2 in 3.00 s" in retries[1].getMessage()


async def test_loop_gives_up_after_max_retries(sleeps: SleepRecorder) -> None:
    errors = [ServerError(f"boom {i}", status=503) for i in range(5)]
    attempt = _Script(*errors)
    with pytest.raises(ServerError, match="boom 2") as info:
        await call_with_retries(attempt, policy=RetryPolicy(max_retries=2), describe="x", sleep=sleeps)
    assert attempt.calls == 3
    assert info.value.attempts == 3
    assert len(sleeps.delays) == 2


async def test_zero_retries_means_one_attempt(sleeps: SleepRecorder) -> None:
    attempt = _Script(ServerError("boom", status=500))
    with pytest.raises(ServerError):
        await call_with_retries(attempt, policy=RetryPolicy(max_retries=0), describe="x", sleep=sleeps)
    assert (attempt.calls, sleeps.delays) == (1, [])


async def test_non_retryable_error_is_raised_at_once(sleeps: SleepRecorder) -> None:
    attempt = _Script(RequestRejected("bad", status=400))
    with pytest.raises(RequestRejected):
        await call_with_retries(attempt, policy=RetryPolicy(), describe="x", sleep=sleeps)
    assert (attempt.calls, sleeps.delays) == (1, [])


async def test_bad_response_is_retried_once_only(sleeps: SleepRecorder) -> None:
    attempt = _Script(BadResponse("garbage 1"), BadResponse("garbage 2"), BadResponse("garbage 3"))
    with pytest.raises(BadResponse, match="garbage 2"):
        await call_with_retries(attempt, policy=RetryPolicy(max_retries=5), describe="x", sleep=sleeps)
    assert attempt.calls == 2


async def test_retry_whose_wait_passes_the_deadline_is_not_started(sleeps: SleepRecorder) -> None:
    now = [0.0]
    attempt = _Script(RateLimited("slow", status=429, retry_after=30.0))
    policy = RetryPolicy(deadline=10.0)
    with pytest.raises(RateLimited) as info:
        await call_with_retries(attempt, policy=policy, describe="x", sleep=sleeps, clock=lambda: now[0])
    assert (attempt.calls, sleeps.delays) == (1, [])
    assert any("deadline" in note for note in info.value.__notes__)


async def test_deadline_cuts_off_a_slow_attempt() -> None:
    async def slow() -> str:
        await asyncio.sleep(5)
        return "late"

    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(DeadlineExceeded) as info:
        await call_with_retries(slow, policy=RetryPolicy(deadline=0.2), describe="x")
    assert loop.time() - start < 1.0
    assert isinstance(info.value.__cause__, TimeoutError)


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="deadline"):
        RetryPolicy(deadline=0)
    with pytest.raises(ValueError, match="backoff_max"):
        RetryPolicy(backoff_max=float("inf"))

"""Typed errors raised by LLM clients.

Every failure a client reports is a `ClientError` subclass, so a pipeline stage can record it as a
`Failed` item (STYLE rule 12) without catching bare `Exception`. Transport failures are chained with
`from` to the aiohttp exception that caused them. Messages never contain an API key: clients redact
their key from any text a server sends back before it reaches an exception.

Misuse that no retry can fix (asking a client for logprobs it cannot give, a missing API key) raises
`ValueError` subclasses instead, at call or construction time.
"""

from __future__ import annotations

__all__ = [
    "BackendNotInstalled",
    "BadResponse",
    "ClientError",
    "ConnectionFailed",
    "DeadlineExceeded",
    "MissingAPIKey",
    "RateLimited",
    "RequestRejected",
    "ServerError",
    "Timeout",
    "UnsupportedRequest",
]


class ClientError(Exception):
    """Base class for every failure of a request to an LLM server.

    Attributes:
        status: the HTTP status of the last reply, or None when no reply arrived.
        attempts: how many requests were sent for this call (1 when it was not retried).
        retry_after: the delay the server asked for (seconds), when it sent one.
    """

    retryable: bool = False
    """Whether the retry loop may try again after this error (see `clients._retry`)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.attempts = 1
        if retryable is not None:  # e.g. the server's `x-should-retry` header overrides the class default
            self.retryable = retryable


class RateLimited(ClientError):
    """HTTP 429: the server or provider asked us to slow down."""

    retryable = True


class ServerError(ClientError):
    """HTTP 408, 409 or >= 500: a failure on the server side that may pass."""

    retryable = True


class RequestRejected(ClientError):
    """Any other HTTP 4xx (400, 401, 403, 404, 422, ...): the request itself is wrong; never retried."""


class Timeout(ClientError):
    """No complete reply within the per-request timeout."""

    retryable = True


class DeadlineExceeded(Timeout):
    """The call's total deadline (across all attempts and waits) ran out; never retried."""

    retryable = False


class ConnectionFailed(ClientError):
    """The connection could not be opened, or closed before a reply's status line arrived."""

    retryable = True


class BadResponse(ClientError):
    """A 2xx reply whose body is unusable: malformed or truncated JSON, no `choices`, missing fields.

    Retried once per call (a proxy hiccup is worth one more try; a server that always answers garbage
    is not worth more), except when `retryable` is set False on the instance, as for a server that
    ignored a logprobs request: asking again gives the same answer.
    """

    retryable = True


class UnsupportedRequest(ValueError):
    """The sampling parameters ask for something this client cannot do (see `ClientCapabilities`)."""


class BackendNotInstalled(ImportError):
    """A client backend's optional dependency (e.g. vLLM) is not installed; the message says what to do."""


class MissingAPIKey(ValueError):
    """The environment variable that should hold the API key is unset or empty."""

"""The client protocol every LLM backend implements, and the values that cross it.

A client turns messages (chat) or a prompt (legacy completion) into a `Generation`. Sampling
settings travel with each call as a frozen `SamplingParams`: a client holds no per-call state, so
concurrent calls with different settings cannot see each other's (Delphi's classifier mutates a
shared kwargs dict while calls run, which is the defect this design rules out). Derive a variant with
`dataclasses.replace(params, temperature=0.7)`.

Scorers check `client.capabilities` before a run (`capabilities.check(params)`) so that a missing
feature (logprobs, prompt logprobs, JSON mode) fails at once with a clear message instead of after
an hour of explanations. Clients run the same check on every call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypedDict, cast, runtime_checkable

from sae_interp.clients.errors import UnsupportedRequest

__all__ = [
    "ClientCapabilities",
    "Generation",
    "LLMClient",
    "Message",
    "SamplingParams",
    "TokenLogprob",
    "TokenUsage",
    "TopLogprob",
]


class Message(TypedDict):
    """One chat message, as the OpenAI API takes it."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, kw_only=True)
class SamplingParams:
    """Per-call generation settings. Frozen: build a new one per variant, never mutate one."""

    max_tokens: int | None = 256
    """Upper bound on generated tokens; None leaves it to the server."""
    temperature: float | None = 0.0
    """0 is greedy, which scorers want; None leaves it to the server."""
    top_p: float | None = None
    """Nucleus sampling mass in (0, 1]; None leaves it to the server."""
    stop: tuple[str, ...] = ()
    """Strings that end generation (not included in the text)."""
    seed: int | None = None
    """Sampling seed, for servers that honour one."""
    logprobs: bool = False
    """Return the log-probability of each generated token."""
    top_logprobs: int = 0
    """How many alternatives per generated token to return with their logprobs (needs `logprobs`)."""
    json_mode: bool = False
    """Ask the server to produce a JSON object (chat only)."""
    json_schema: Mapping[str, Any] | None = None
    """A JSON schema the reply must follow (chat only; implies JSON mode)."""
    prompt_logprobs: int = 0
    """Alternatives per prompt token to return; 0 = none. Only clients whose capabilities allow it."""

    def __post_init__(self) -> None:
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"SamplingParams.max_tokens must be >= 1 or None, got {self.max_tokens!r}")
        if self.temperature is not None and not (0.0 <= self.temperature <= 2.0):
            raise ValueError(f"SamplingParams.temperature must be in [0, 2] or None, got {self.temperature}")
        if self.top_p is not None and not (0.0 < self.top_p <= 1.0):
            raise ValueError(f"SamplingParams.top_p must be in (0, 1] or None, got {self.top_p!r}")
        if not _is_str_tuple(self.stop):  # stop="\n" (a bare string) is a common slip
            raise ValueError(f"SamplingParams.stop must be a tuple of strings, got {self.stop!r}")
        if self.top_logprobs < 0 or self.prompt_logprobs < 0:
            raise ValueError(
                "SamplingParams.top_logprobs and prompt_logprobs must be >= 0, "
                f"got {self.top_logprobs!r} and {self.prompt_logprobs!r}"
            )
        if self.top_logprobs > 0 and not self.logprobs:
            raise ValueError(
                f"SamplingParams.top_logprobs={self.top_logprobs} needs logprobs=True (it is False)"
            )

    @property
    def wants_json(self) -> bool:
        """Whether the reply must be JSON (JSON mode or a schema)."""
        return self.json_mode or self.json_schema is not None


def _is_str_tuple(value: object) -> bool:
    return isinstance(value, tuple) and all(isinstance(item, str) for item in cast(tuple[object, ...], value))


@dataclass(frozen=True)
class TopLogprob:
    """One alternative token at a position, with its log-probability."""

    token: str
    logprob: float


@dataclass(frozen=True, kw_only=True)
class TokenLogprob:
    """A generated (or prompt) token, its log-probability, and the top alternatives (best first)."""

    token: str
    logprob: float
    top_logprobs: tuple[TopLogprob, ...] = ()


@dataclass(frozen=True)
class TokenUsage:
    """Token counts as the server reported them."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, kw_only=True)
class Generation:
    """What one call produced."""

    text: str
    """The generated text (for chat, the assistant message's content)."""
    finish_reason: str | None = None
    """Why generation stopped, as the server said ("stop", "length", ...)."""
    logprobs: tuple[TokenLogprob, ...] | None = None
    """One entry per generated token when logprobs were asked for, else None."""
    prompt_logprobs: tuple[TokenLogprob | None, ...] | None = None
    """One entry per prompt token (None where the server gives none, e.g. the first) when asked for."""
    usage: TokenUsage | None = None
    """Token counts, when the server reported them."""


@dataclass(frozen=True, kw_only=True)
class ClientCapabilities:
    """What a client (backend + server) can do; scorers check this before they run."""

    logprobs: bool = False
    """Logprobs of generated tokens."""
    max_top_logprobs: int = 0
    """The most alternatives per token the server returns (OpenAI and vLLM's default: 20)."""
    prompt_logprobs: bool = False
    """Logprobs of prompt tokens (vLLM's extension; not part of the OpenAI API)."""
    json_mode: bool = False
    """`response_format` JSON object / JSON schema on chat."""
    max_concurrency: int = 1
    """Requests this client keeps in flight at most."""
    chat_tuned: bool = True
    """The model behind `chat` is chat-tuned. False for a base model (its chat uses a plain
    template): explainers then prefer completion-style prompts."""

    def __post_init__(self) -> None:
        if self.max_top_logprobs < 0:
            raise ValueError(f"ClientCapabilities.max_top_logprobs must be >= 0, got {self.max_top_logprobs}")
        if self.max_concurrency < 1:
            raise ValueError(f"ClientCapabilities.max_concurrency must be >= 1, got {self.max_concurrency}")

    def check(self, params: SamplingParams, *, client: str = "this client") -> None:
        """Raise if `params` asks for something this client cannot do.

        Args:
            params: the settings a caller is about to use.
            client: a name for the client, used in the message.

        Raises:
            UnsupportedRequest: naming the parameter and the capability that is missing.
        """
        problems: list[str] = []
        if params.logprobs and not self.logprobs:
            problems.append("logprobs=True but the client returns no logprobs")
        if params.top_logprobs > self.max_top_logprobs:
            problems.append(
                f"top_logprobs={params.top_logprobs} but the client returns at most {self.max_top_logprobs}"
            )
        if params.prompt_logprobs and not self.prompt_logprobs:
            problems.append(f"prompt_logprobs={params.prompt_logprobs} but the client has no prompt logprobs")
        if params.wants_json and not self.json_mode:
            problems.append("JSON mode / json_schema asked for but the client has no JSON mode")
        if problems:
            raise UnsupportedRequest(f"{client}: " + "; ".join(problems))


@runtime_checkable
class LLMClient(Protocol):
    """The interface explainers and scorers use. One client is shared by all concurrent stages."""

    @property
    def capabilities(self) -> ClientCapabilities:
        """What this client can do (checked against every call's params)."""
        ...

    async def chat(self, messages: Sequence[Message], params: SamplingParams) -> Generation:
        """Generate the assistant's reply to `messages`.

        Raises:
            UnsupportedRequest: `params` asks for a capability the client lacks.
            ClientError: the request failed after retries (see `clients.errors`).
        """
        ...

    async def complete(self, prompt: str, params: SamplingParams) -> Generation:
        """Continue `prompt` as raw text (no chat template).

        Raises:
            UnsupportedRequest: `params` asks for a capability the client lacks.
            ClientError: the request failed after retries (see `clients.errors`).
        """
        ...

    async def aclose(self) -> None:
        """Release connections. The client cannot be used afterwards."""
        ...

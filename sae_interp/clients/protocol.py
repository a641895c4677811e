"""OpenAI wire format: the few request and response fields sae_interp uses, as pydantic models.

Reference: https://platform.openai.com/docs/api-reference/chat/create and
https://platform.openai.com/docs/api-reference/completions/create (legacy completions). vLLM and
llama.cpp's server speak the same format; we depend on the wire format only and never import their
classes (they are large and move between versions).

Boundary decisions:
- Requests forbid unknown fields, so a typo in our own code fails loudly in tests.
- Responses ignore unknown fields: servers add their own (`system_fingerprint`, `provider`, ...),
  and a new field must not break a run. vLLM's `prompt_logprobs` is modelled, and requested only by
  a client that opts in.
- Logprobs come in two shapes: chat puts them in `logprobs.content[]` with a list of
  `top_logprobs`; legacy completions use parallel lists `tokens`, `token_logprobs` and
  `top_logprobs` (one `{token: logprob}` dict per position).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatChoice",
    "ChatCompletionRequest",
    "ChatCompletionResponse",
    "ChatLogprobs",
    "ChatMessage",
    "ChatTokenLogprob",
    "CompletionChoice",
    "CompletionLogprobs",
    "CompletionRequest",
    "CompletionResponse",
    "ErrorInfo",
    "ErrorResponse",
    "JsonSchemaFormat",
    "PromptLogprob",
    "ResponseFormat",
    "ResponseMessage",
    "TopLogprobEntry",
    "UsageInfo",
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# ---------------------------------------------------------------- requests


class ChatMessage(_Request):
    role: Literal["system", "user", "assistant"]
    content: str


class JsonSchemaFormat(_Request):
    name: str
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool = True


class ResponseFormat(_Request):
    type: Literal["json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class _SamplingFields(_Request):
    """Fields shared by both endpoints, in the order of the OpenAI reference."""

    model: str
    max_tokens: int | None = None
    seed: int | None = None
    stop: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None


class ChatCompletionRequest(_SamplingFields):
    messages: list[ChatMessage]
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: ResponseFormat | None = None


class CompletionRequest(_SamplingFields):
    prompt: str
    logprobs: int | None = Field(default=None, ge=0)
    """Legacy meaning: how many top alternatives per token (0 = only the sampled token's logprob)."""
    # --- vLLM extensions (not in the OpenAI reference); sent only when a client opts in.
    prompt_logprobs: int | None = Field(default=None, ge=0)
    """vLLM: alternatives per prompt token to return, besides the prompt token itself."""


# ---------------------------------------------------------------- responses


class UsageInfo(_Response):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int | None = None


class TopLogprobEntry(_Response):
    token: str
    logprob: float


class ChatTokenLogprob(_Response):
    token: str
    logprob: float
    top_logprobs: list[TopLogprobEntry] = Field(default_factory=list[TopLogprobEntry])


class ChatLogprobs(_Response):
    content: list[ChatTokenLogprob] | None = None


class ResponseMessage(_Response):
    role: str = "assistant"
    content: str | None = None


class ChatChoice(_Response):
    index: int = 0
    message: ResponseMessage
    finish_reason: str | None = None
    logprobs: ChatLogprobs | None = None


class ChatCompletionResponse(_Response):
    id: str | None = None
    model: str | None = None
    choices: list[ChatChoice] = Field(min_length=1)
    usage: UsageInfo | None = None


class CompletionLogprobs(_Response):
    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None] | None = None
    text_offset: list[int] | None = None


class PromptLogprob(_Response):
    """vLLM: one candidate at a prompt position."""

    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


class CompletionChoice(_Response):
    index: int = 0
    text: str
    finish_reason: str | None = None
    logprobs: CompletionLogprobs | None = None
    prompt_logprobs: list[dict[str, PromptLogprob] | None] | None = None
    """vLLM: per prompt token (None for the first), candidates by token id; the prompt token's own
    entry comes first (vLLM builds each dict from it, then the top alternatives)."""


class CompletionResponse(_Response):
    id: str | None = None
    model: str | None = None
    choices: list[CompletionChoice] = Field(min_length=1)
    usage: UsageInfo | None = None


# ---------------------------------------------------------------- errors


class ErrorInfo(_Response):
    message: str
    type: str | None = None
    param: str | None = None
    code: str | int | None = None
    """OpenAI sends a string such as "rate_limit_exceeded"; OpenRouter sends the HTTP status."""


class ErrorResponse(_Response):
    """The body of an error reply: `{"error": {"message", "type", "param", "code"}}`."""

    error: ErrorInfo

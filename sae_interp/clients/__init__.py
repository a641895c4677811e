"""LLM clients: the OpenAI wire format over httpx, with one retry policy, throttling and typed errors.

Explainers and scorers depend on `LLMClient` (chat / complete with per-call `SamplingParams`) and
check `ClientCapabilities` before they run. Clients know nothing about SAEs or latents.
"""

from sae_interp.clients.base import (
    ClientCapabilities,
    Generation,
    LLMClient,
    Message,
    SamplingParams,
    TokenLogprob,
    TokenUsage,
    TopLogprob,
)
from sae_interp.clients.errors import (
    BadResponse,
    ClientError,
    ConnectionFailed,
    DeadlineExceeded,
    MissingAPIKey,
    RateLimited,
    RequestRejected,
    ServerError,
    Timeout,
    UnsupportedRequest,
)
from sae_interp.clients.factory import ClientConfig, ClientKind, make_client, register_client
from sae_interp.clients.openai_compatible import OPENROUTER_BASE_URL, OpenAICompatible, OpenRouter

__all__ = [
    "OPENROUTER_BASE_URL",
    "BadResponse",
    "ClientCapabilities",
    "ClientConfig",
    "ClientError",
    "ClientKind",
    "ConnectionFailed",
    "DeadlineExceeded",
    "Generation",
    "LLMClient",
    "Message",
    "MissingAPIKey",
    "OpenAICompatible",
    "OpenRouter",
    "RateLimited",
    "RequestRejected",
    "SamplingParams",
    "ServerError",
    "Timeout",
    "TokenLogprob",
    "TokenUsage",
    "TopLogprob",
    "UnsupportedRequest",
    "make_client",
    "register_client",
]

"""LLM clients: the OpenAI wire format over aiohttp, with one retry policy, throttling and typed errors.

In-process backends (`Local`, `OfflineVLLM`) import their heavy dependencies only when built.

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
    BackendNotInstalled,
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
from sae_interp.clients.vllm_offline import OfflineVLLM

__all__ = [
    "OPENROUTER_BASE_URL",
    "BackendNotInstalled",
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
    "OfflineVLLM",
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

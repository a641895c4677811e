"""Interventions on the residual stream, and generation under them: every intervention hook is made here.

Two interventions cover the refusal tools, the evals, SAE-TS and the local client:

- `Ablate(direction)`: directional ablation `x <- x - (x . r_hat) r_hat` on the residual stream at
  every layer boundary (the input of every decoder layer and the output of the last one), at every
  position, prompt and generated tokens alike. REFERENCE.md section 1 accepts this residual-stream
  form; it leaves the direction that attention writes mid-layer visible to that layer's MLP.
- `AddVector(layer, vector)`: `x <- x + vector` at the input of one decoder layer, every position;
  `vector` may also be one row per prompt (`[n_prompts, d_model]`), so that many steering vectors
  run in one batch (SAE-TS feature effects, scale sweeps). `generate` hands each batch its rows.
- `Splice(layer, fn)`: `x <- fn(x)` at the input of one decoder layer (an SAE's reconstruction for
  the core eval, zeros for zero ablation, or an identity that records x).

Hooks are plain torch hooks registered inside `intervene`, a context manager that removes them in
`finally`: nothing stays attached to the model when a function returns, even after an exception.
They work with `generate` and its KV cache, because each new position passes through them once.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from sae_interp.models.loading import LoadedModel
from sae_interp.models.prefix import split_shared_prefix
from sae_interp.models.prompts import PromptBatch

__all__ = [
    "Ablate",
    "AddVector",
    "Intervention",
    "Splice",
    "generate",
    "generate_ids",
    "intervene",
    "prefix_shareable",
]


@dataclass(frozen=True)
class Ablate:
    """Project `direction` out of the residual stream at every layer and position."""

    direction: Tensor
    """[d_model]; normalised internally."""


@dataclass(frozen=True)
class AddVector:
    """Add `vector` to the residual stream entering decoder layer `layer`, at every position."""

    layer: int
    vector: Tensor
    """[d_model], already scaled; or [batch, d_model], one vector per row of the batch."""

    def rows(self, start: int, stop: int) -> AddVector:
        """The rows start..stop-1 of a per-row vector (itself when the vector is shared)."""
        return self if self.vector.ndim == 1 else AddVector(self.layer, self.vector[start:stop])


@dataclass(frozen=True)
class Splice:
    """Replace the residual stream entering decoder layer `layer` with `fn(x)`, at every position."""

    layer: int
    fn: Callable[[Tensor], Tensor]
    """x: [batch, seq, d_model] -> a tensor of the same shape (cast back to x's dtype and device)."""


Intervention = Ablate | AddVector | Splice


def prefix_shareable(interventions: Sequence[Intervention]) -> bool:
    """Whether the rows of a batch may share one prefix's KV cache under `interventions`.

    Not with per-row vectors (each row's prefix differs), and not with a `Splice`: its fn is
    opaque and may record or count what it sees (the core eval sums over rows), which a prefix run
    once for the batch would change.
    """
    return not any(
        isinstance(item, Splice) or (isinstance(item, AddVector) and item.vector.ndim == 2)
        for item in interventions
    )


def _replace_hidden(args: tuple, kwargs: dict, edit) -> tuple[tuple, dict]:
    if args:
        return (edit(args[0]), *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": edit(kwargs["hidden_states"])}


def _edit_output(output: Any, edit) -> Any:
    if isinstance(output, tuple):
        return (edit(output[0]), *output[1:])
    return edit(output)


@contextmanager
def intervene(model: LoadedModel, interventions: Sequence[Intervention]) -> Iterator[None]:
    """Apply `interventions` to every forward run inside the block."""
    layers = typing.cast(nn.ModuleList, model.hf.get_submodule(model.spec.layers_path))
    handles = []
    try:
        for item in interventions:
            if isinstance(item, Ablate):
                unit = item.direction / item.direction.norm()

                def ablate(x: Tensor, unit: Tensor = unit) -> Tensor:
                    u = unit.to(device=x.device, dtype=x.dtype)
                    return x - (x @ u)[..., None] * u

                for layer in layers:
                    handles.append(
                        layer.register_forward_pre_hook(
                            lambda _m, a, k, f=ablate: _replace_hidden(a, k, f), with_kwargs=True
                        )
                    )
                handles.append(
                    layers[-1].register_forward_hook(lambda _m, _a, out, f=ablate: _edit_output(out, f))
                )
            elif isinstance(item, AddVector):
                model.spec.layer_path(item.layer)  # range check with a clear message

                def add(x: Tensor, v: Tensor = item.vector) -> Tensor:
                    if v.ndim == 2:  # one vector per row: [batch, d_model] -> [batch, 1, d_model]
                        if v.shape[0] != x.shape[0]:
                            raise ValueError(
                                f"AddVector has {v.shape[0]} per-row vectors for a batch of {x.shape[0]}"
                            )
                        v = v[:, None, :]
                    return x + v.to(device=x.device, dtype=x.dtype)

                handles.append(
                    layers[item.layer].register_forward_pre_hook(
                        lambda _m, a, k, f=add: _replace_hidden(a, k, f), with_kwargs=True
                    )
                )
            elif isinstance(item, Splice):
                model.spec.layer_path(item.layer)

                def splice(x: Tensor, fn: Callable[[Tensor], Tensor] = item.fn) -> Tensor:
                    out = fn(x)
                    if out.shape != x.shape:
                        raise ValueError(
                            f"Splice fn returned shape {tuple(out.shape)} for input {tuple(x.shape)}"
                        )
                    return out.to(device=x.device, dtype=x.dtype)

                handles.append(
                    layers[item.layer].register_forward_pre_hook(
                        lambda _m, a, k, f=splice: _replace_hidden(a, k, f), with_kwargs=True
                    )
                )
            else:
                raise TypeError(f"unknown intervention {item!r}; use Ablate, AddVector or Splice")
        yield
    finally:
        for handle in handles:
            handle.remove()


@torch.inference_mode()
def generate_ids(
    model: LoadedModel,
    prompts: PromptBatch,
    *,
    max_new_tokens: int,
    interventions: Sequence[Intervention] = (),
    batch_size: int = 8,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int = 0,
) -> Tensor:
    """Generate continuations of `prompts` (greedy by default) under `interventions`, in batches.

    Per-row `AddVector`s are sliced so that each batch gets the vectors of its own rows. When
    `prefix_shareable`, a long prefix all prompts of a batch start with runs once
    (`sae_interp.models.prefix`).

    Returns:
        [n_prompts, max_new_tokens] new token ids; positions after a row stopped (EOS) hold the
        tokenizer's pad id.
    """
    pad_id = model.tokenizer.pad_token_id
    chunks: list[Tensor] = []
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for start in range(0, len(prompts), batch_size):
            stop = start + batch_size
            batch = prompts.rows(start, stop)
            sliced = [
                item.rows(start, stop) if isinstance(item, AddVector) else item for item in interventions
            ]
            shared = split_shared_prefix(batch, pad_id) if prefix_shareable(sliced) else None
            input_ids = shared.input_ids if shared else batch.input_ids
            with intervene(model, sliced):
                out = typing.cast(Any, model.hf).generate(  # generate comes from GenerationMixin
                    input_ids=input_ids.to(model.device),
                    attention_mask=(shared or batch).attention_mask.to(model.device),
                    past_key_values=shared.prefill(model.hf) if shared else None,
                    max_new_tokens=max_new_tokens,
                    do_sample=do_sample,
                    temperature=temperature if do_sample else None,
                    top_p=None,
                    top_k=None,
                    pad_token_id=pad_id,
                )
            new = out[:, input_ids.shape[1] :].cpu()
            # generation stops early when every row has ended: pad to a fixed width
            chunks.append(nn.functional.pad(new, (0, max_new_tokens - new.shape[1]), value=pad_id))
    finally:
        torch.random.set_rng_state(generator_state)
    return torch.cat(chunks) if chunks else torch.empty(0, max_new_tokens, dtype=torch.long)


def generate(
    model: LoadedModel,
    prompts: PromptBatch,
    *,
    max_new_tokens: int,
    interventions: Sequence[Intervention] = (),
    batch_size: int = 8,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int = 0,
) -> list[str]:
    """`generate_ids`, decoded.

    Returns:
        The decoded new text of each prompt, special tokens removed.
    """
    ids = generate_ids(
        model,
        prompts,
        max_new_tokens=max_new_tokens,
        interventions=interventions,
        batch_size=batch_size,
        do_sample=do_sample,
        temperature=temperature,
        seed=seed,
    )
    return model.tokenizer.batch_decode(ids, skip_special_tokens=True)

"""Read the residual stream at chosen layers, in batches, stopping the forward as early as possible.

"Residual layer L" is the input of decoder layer L, i.e. `hidden_states[L]` of a transformers
forward and `blocks.L.hook_resid_pre` in SAELens. Reading it needs only layers 0..L-1, so by
default the forward is stopped right after the last requested layer's input is saved: on a
2-core CPU that is ~3-4x faster than the full forward with logits (see bench/forward.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from sae_interp.models.loading import LoadedModel

__all__ = ["ResidBatch", "collect_resid", "read_resid"]


@dataclass(frozen=True)
class ResidBatch:
    """Residual activations of one batch of token rows."""

    start: int
    """Index of the batch's first row within the `tokens` passed to `read_resid`."""
    acts: dict[int, Tensor]
    """layer -> activations [batch, seq, d_model], in the model's dtype, on the model's device."""


def read_resid(
    model: LoadedModel,
    layers: int | Sequence[int],
    tokens: Tensor,
    *,
    batch_size: int = 8,
    attention_mask: Tensor | None = None,
    stop: bool = True,
) -> Iterator[ResidBatch]:
    """Stream residual activations of `tokens` at `layers`.

    Args:
        model: from `load_model`.
        layers: residual layer(s), each in 0..n_layers-1.
        tokens: [n_rows, seq] token ids.
        batch_size: rows per forward.
        attention_mask: [n_rows, seq] (1 = real token), for left-padded prompts.
        stop: stop the forward after the last requested layer (False runs the full model, e.g.
            to compare timings).

    Yields:
        One `ResidBatch` per batch, in order.
    """
    wanted = sorted({layers} if isinstance(layers, int) else set(layers))
    if not wanted:
        raise ValueError("layers is empty: name at least one residual layer")
    for layer in wanted:
        model.spec.layer_path(layer)  # validates the range with a clear message
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be [n_rows, seq], got shape {tuple(tokens.shape)}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    envoys = [model.layer(layer) for layer in wanted]
    for start in range(0, tokens.shape[0], batch_size):
        inputs = {"input_ids": tokens[start : start + batch_size].to(model.device)}
        if attention_mask is not None:
            inputs["attention_mask"] = attention_mask[start : start + batch_size].to(model.device)
        yield ResidBatch(start=start, acts=_trace_layers(model, envoys, wanted, inputs, stop))


@torch.inference_mode()
def _trace_layers(
    model: LoadedModel, envoys: list, layers: list[int], inputs: dict[str, Tensor], stop: bool
) -> dict[int, Tensor]:
    saved = {}
    # nnsight 0.8 requires modules to be read in execution order: `layers` is sorted.
    with model.lm.trace(inputs) as tracer:
        for layer, envoy in zip(layers, envoys, strict=True):
            saved[layer] = envoy.input.save()
        if stop:
            tracer.stop()
    return {layer: value.detach() for layer, value in saved.items()}


def collect_resid(
    model: LoadedModel,
    layers: int | Sequence[int],
    tokens: Tensor,
    *,
    batch_size: int = 8,
    attention_mask: Tensor | None = None,
) -> dict[int, Tensor]:
    """All of `read_resid` concatenated: layer -> [n_rows, seq, d_model] (small inputs only)."""
    parts: dict[int, list[Tensor]] = {}
    for batch in read_resid(model, layers, tokens, batch_size=batch_size, attention_mask=attention_mask):
        for layer, acts in batch.acts.items():
            parts.setdefault(layer, []).append(acts)
    return {layer: torch.cat(chunks) for layer, chunks in parts.items()}

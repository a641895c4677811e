"""Steering with many vectors at once: batched steered generation, SAE latents of the result, and
the scale search that makes a vector cost a chosen loss increase.

Every function here puts several steering vectors in one batch (one `AddVector` row per prompt row,
see `models/interventions.py`), because on a CPU the model is only kept busy by wide batches: the
batched feature-effect collection runs several times faster than one vector at a time
(bench/effects.py).

Row layout shared by all functions: rows are vector-major, so rows `j*R .. (j+1)*R - 1` belong to
vector j, where R is the number of rows per vector (prompts x samples).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from sae_interp.models import AddVector, LoadedModel, PromptBatch, generate_ids, intervene, read_resid
from sae_interp.sae import SAE

__all__ = ["Generations", "calibrate_scales", "generate_steered", "latent_means", "steering_loss"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generations:
    """Steered continuations of prompts, kept as token ids so they can be re-encoded."""

    prompts: PromptBatch
    """[rows, prompt_len] the prompt of each row (left-padded)."""
    new_ids: Tensor
    """[rows, max_new_tokens] generated ids; the pad id after a row ended."""
    new_mask: Tensor
    """[rows, max_new_tokens] 1 for generated tokens, 0 for padding."""

    def full(self) -> tuple[Tensor, Tensor]:
        """(input_ids, attention_mask) of prompt + continuation: [rows, prompt_len + max_new_tokens]."""
        ids = torch.cat([self.prompts.input_ids, self.new_ids], dim=1)
        mask = torch.cat([self.prompts.attention_mask, self.new_mask], dim=1)
        return ids, mask


def _tile(prompts: PromptBatch, n_vectors: int, n_samples: int) -> PromptBatch:
    """Each prompt `n_samples` times, and that block once per vector (vector-major rows)."""
    ids = prompts.input_ids.repeat_interleave(n_samples, dim=0).repeat(n_vectors, 1)
    mask = prompts.attention_mask.repeat_interleave(n_samples, dim=0).repeat(n_vectors, 1)
    return PromptBatch(ids, mask)


def generate_steered(
    model: LoadedModel,
    prompts: PromptBatch,
    vectors: Tensor,
    layer: int,
    *,
    n_samples: int,
    max_new_tokens: int,
    batch_size: int,
    temperature: float = 1.0,
    seed: int = 0,
) -> Generations:
    """Generate from every prompt `n_samples` times under each steering vector, in wide batches.

    Args:
        model: from `load_model`.
        prompts: [n_prompts, seq] prompts.
        vectors: [n_vectors, d_model] steering vectors, already scaled (a zero row = unsteered).
        layer: residual layer the vectors are added to (input of decoder layer `layer`).
        n_samples: continuations per prompt and vector.
        max_new_tokens: tokens per continuation.
        batch_size: rows per `generate` call (rows = n_vectors * n_prompts * n_samples in all).
        temperature: sampling temperature; 0 means greedy.
        seed: sampling seed.

    Returns:
        `Generations` with n_vectors * n_prompts * n_samples rows, vector-major.
    """
    tiled = _tile(prompts, vectors.shape[0], n_samples)
    per_row = vectors.repeat_interleave(len(prompts) * n_samples, dim=0)
    new = generate_ids(
        model,
        tiled,
        max_new_tokens=max_new_tokens,
        interventions=[AddVector(layer, per_row)],
        batch_size=batch_size,
        do_sample=temperature > 0,
        temperature=temperature if temperature > 0 else 1.0,
        seed=seed,
    )
    return Generations(tiled, new, (new != model.tokenizer.pad_token_id).long())


@torch.inference_mode()
def latent_means(model: LoadedModel, sae: SAE, layer: int, gens: Generations, *, batch_size: int) -> Tensor:
    """Mean SAE latents over each row's generated tokens, read from the *unsteered* model.

    The continuation is re-encoded without the steering vector, so the effect measures what the
    steered text is about, not the vector itself sitting in the residual stream (SAE-TS does the same).

    Returns:
        [rows, d_sae] float32 (zeros for a row with no generated token).
    """
    ids, mask = gens.full()
    start_new = gens.prompts.input_ids.shape[1]
    out: list[Tensor] = []
    for batch in read_resid(model, layer, ids, batch_size=batch_size, attention_mask=mask):
        acts = sae.encode(batch.acts[layer][:, start_new:].float())  # [b, new, d_sae]
        m = gens.new_mask[batch.start : batch.start + acts.shape[0]].to(acts)[..., None]
        out.append((acts * m).sum(1).cpu() / m.sum(1).clamp_min(1).cpu())
    return torch.cat(out)


@torch.inference_mode()
def steering_loss(
    model: LoadedModel, tokens: Tensor, vectors: Tensor, layer: int, *, batch_size: int = 8
) -> Tensor:
    """Mean next-token cross-entropy of `tokens` under each steering vector.

    Args:
        tokens: [n_rows, seq] token rows without padding (e.g. from `tokenize_rows`).
        vectors: [n_vectors, d_model] steering vectors, already scaled.

    Returns:
        [n_vectors] mean loss per token, float32.
    """
    n_rows = tokens.shape[0]
    rows = tokens.repeat(vectors.shape[0], 1)
    per_row = vectors.repeat_interleave(n_rows, dim=0)
    losses: list[Tensor] = []
    for start in range(0, rows.shape[0], batch_size):
        ids = rows[start : start + batch_size].to(model.device)
        with intervene(model, [AddVector(layer, per_row[start : start + batch_size])]):
            logits = model.hf(input_ids=ids).logits[:, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
        losses.append(nll.mean(1).cpu())
    return torch.cat(losses).view(vectors.shape[0], n_rows).mean(1)


def calibrate_scales(
    model: LoadedModel,
    directions: Tensor,
    tokens: Tensor,
    layer: int,
    *,
    target_increase: float,
    max_scale: float,
    span: float = 1024.0,
    iters: int = 7,
    batch_size: int = 8,
) -> Tensor:
    """Per direction, the scale at which steering raises the loss on `tokens` by `target_increase`.

    Bisection in log space on [max_scale / span, max_scale], all directions moved together: each
    step is one batched loss evaluation of every direction at its current midpoint. Log space,
    because the useful scale is not a fixed fraction of the residual norm (gemma's norm is inflated
    by a few huge dimensions, and its useful scales are a few percent of it). A direction that stays
    below the target up to `max_scale` ends near `max_scale` (logged).

    Args:
        directions: [n, d_model] steering directions (normalised here).
        tokens: [n_rows, seq] text on which the loss is measured.
        target_increase: wanted loss increase in nats per token over the unsteered loss.
        max_scale: upper end of the search (a few times the residual norm at `layer` is ample).
        span: ratio of the upper to the lower end of the search.
        iters: bisection steps; the result is within a factor span ** (1 / 2**iters) of the crossing.

    Returns:
        [n] scales, float32.
    """
    units = directions.float() / directions.float().norm(dim=1, keepdim=True).clamp_min(1e-12)
    base = steering_loss(model, tokens, torch.zeros(1, units.shape[1]), layer, batch_size=batch_size)
    lo = torch.full((units.shape[0],), float(max_scale / span)).log()
    hi = torch.full((units.shape[0],), float(max_scale)).log()
    for _ in range(iters):
        mid = (lo + hi) / 2
        loss = steering_loss(model, tokens, units * mid.exp()[:, None], layer, batch_size=batch_size)
        above = loss - base > target_increase
        hi = torch.where(above, mid, hi)
        lo = torch.where(above, lo, mid)
    scales = ((lo + hi) / 2).exp()
    if unreached := int((hi == math.log(max_scale)).sum()):
        logger.info(
            "%d of %d directions stay below +%.2f nats up to scale %.4g",
            unreached,
            len(hi),
            target_increase,
            max_scale,
        )
    return scales

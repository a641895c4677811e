"""Attribution of the refusal score to SAE latents: gradient x activation (Marks et al.'s linear estimate).

The SAE is spliced into the residual stream at its layer as `decode(f) + error`, with the error
term `x - decode(f)` held constant, so the forward pass is exactly the model's own while the refusal
score (next-token log-odds of refusal tokens at the last position) becomes differentiable in the
latent activations f. A latent's attribution is `sum_positions f * d score / d f`, the first-order
estimate of how much the score would drop if that latent were zeroed, averaged over prompts.

Where cosine with r asks whether a latent *writes* r and the mean difference asks whether it *fires*
on harmful prompts, attribution asks whether it *drives* the model's refusal on them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from sae_interp.models.interventions import Splice, intervene
from sae_interp.models.loading import LoadedModel
from sae_interp.models.prefix import last_logits_only
from sae_interp.models.prompts import PromptBatch
from sae_interp.refusal.metrics import refusal_scores
from sae_interp.sae.base import SAE

__all__ = ["refusal_attribution"]


def _scored_positions(attention_mask: Tensor) -> Tensor:
    """[n, seq] bool: real tokens except each row's first (BOS carries outsized activations)."""
    real = attention_mask.bool()
    first = real & (real.long().cumsum(-1) == 1)
    return real & ~first


def refusal_attribution(
    model: LoadedModel,
    sae: SAE,
    layer: int,
    prompts: PromptBatch,
    token_ids: Sequence[int],
    *,
    batch_size: int = 8,
) -> Tensor:
    """Mean over `prompts` of each latent's gradient x activation on the refusal score, [d_sae] float64.

    Args:
        model: the model whose layer `layer` the SAE reads.
        sae: the SAE (its d_in must be the model's width).
        layer: the residual layer (input of decoder layer `layer`) the SAE was trained on.
        prompts: left-padded prompts, e.g. harmful instructions in the chat template.
        token_ids: the refusal tokens whose log-odds is the score (`refusal_token_ids`).

    Raises:
        ValueError: the SAE's width is not the model's.
    """
    if sae.cfg.d_in != model.spec.d_model:
        raise ValueError(
            f"SAE d_in={sae.cfg.d_in} but {model.spec.name} has d_model={model.spec.d_model}: "
            "give an SAE trained on this model's residual stream"
        )
    latents: list[Tensor] = []  # the spliced activations of the current batch

    def splice(x: Tensor) -> Tensor:
        f = sae.encode(x.to(sae.device, sae.dtype)).detach().requires_grad_(True)
        latents.append(f)
        recon = sae.decode(f).to(x.dtype)
        return recon + (x - recon).detach()

    total = torch.zeros(sae.cfg.d_sae, dtype=torch.float64)
    for start in range(0, len(prompts), batch_size):
        batch = prompts.rows(start, start + batch_size)
        latents.clear()
        with torch.enable_grad(), intervene(model, [Splice(layer, splice)]):
            logits = model.hf(
                input_ids=batch.input_ids.to(model.device),
                attention_mask=batch.attention_mask.to(model.device),
                **last_logits_only(model.hf),
            ).logits[:, -1]
            score = refusal_scores(logits.float().log_softmax(-1), token_ids).sum()
            (grad,) = torch.autograd.grad(score, latents[0])
        f = latents[0].detach()
        keep = _scored_positions(batch.attention_mask).to(f.device)
        total += (f * grad * keep[..., None]).sum((0, 1)).double().cpu()
    return total / len(prompts)

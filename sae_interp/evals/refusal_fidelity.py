"""Refusal fidelity: how well an SAE's reconstruction keeps the refusal direction r (REFERENCE 2).

With `x = SAE(x) + error` for every residual x, the difference of means splits exactly:
`r = Δrecon + Δerror`, where `Δrecon = mean SAE(x_harmful) - mean SAE(x_harmless)` is the part
that passes through the latent space (decode(encode(x))) and `Δerror` is the part the SAE misses.
Kissane et al. report `cos(Δrecon, r)` and the relative MSE `|Δrecon - r|^2 / |r|^2` (which is
also `|Δerror|^2 / |r|^2`); we add the norm ratio `|Δrecon| / |r|` (shrinkage of r) and
`cos(Δerror, r)` (how much of r itself sits in the error term), and the largest cosine of a single
decoder row with r (the best one-latent stand-in for r).

No model is needed: the evaluation takes residuals read once (`collect_refusal_activations`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from sae_interp.evals._refusal import RefusalActivations, decoder_cosines, mean_latent_difference
from sae_interp.sae.base import SAE

__all__ = ["EVAL_TYPE_ID_REFUSAL_FIDELITY", "RefusalFidelityResult", "evaluate_refusal_fidelity"]

EVAL_TYPE_ID_REFUSAL_FIDELITY = "refusal_fidelity"


@dataclass(frozen=True)
class RefusalFidelityResult:
    """Grouped metrics (SAEBench `eval_result_metrics`) and the top latents by decoder cosine."""

    metrics: dict[str, dict[str, Any]]
    details: list[dict[str, Any]]
    """One row per latent among the `n_top` largest decoder cosines with r, best first."""


@torch.inference_mode()
def evaluate_refusal_fidelity(
    sae: SAE, acts: RefusalActivations, *, n_top: int = 16
) -> RefusalFidelityResult:
    """Compare the SAE's reconstruction of the harmful - harmless difference with r.

    Args:
        sae: any SAE whose d_in is the width of `acts`.
        acts: last-position residuals of harmful and harmless prompts at the SAE's layer.
        n_top: latents listed in `details`.

    Returns:
        Metrics `reconstruction` (recon_cosine, recon_relative_mse, recon_norm_ratio, error_cosine)
        and `single_latent` (max_decoder_cosine, its latent, max |cosine|), plus details.
    """
    r = acts.r.double()
    recon = sae(acts.harmful).recon.double().mean(0) - sae(acts.harmless).recon.double().mean(0)
    error = r - recon
    cosines = decoder_cosines(sae, r)
    best = int(cosines.argmax())
    metrics = {
        "direction": {"layer": acts.layer, "r_norm": float(r.norm()), "n_harmful": len(acts.harmful)},
        "reconstruction": {
            "recon_cosine": float(F.cosine_similarity(recon, r, dim=0)),
            "recon_relative_mse": float(error.pow(2).sum() / r.pow(2).sum()),
            "recon_norm_ratio": float(recon.norm() / r.norm()),
            "error_cosine": float(F.cosine_similarity(error, r, dim=0)),
        },
        "single_latent": {
            "max_decoder_cosine": float(cosines[best]),
            "max_decoder_cosine_latent": best,
            "max_abs_decoder_cosine": float(cosines.abs().max()),
        },
    }
    diff = mean_latent_difference(sae, acts)
    top = cosines.topk(min(n_top, len(cosines))).indices.tolist()
    details = [
        {"index": i, "decoder_cosine": float(cosines[i]), "mean_activation_difference": float(diff[i])}
        for i in top
    ]
    return RefusalFidelityResult(metrics, details)

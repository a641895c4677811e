"""Refusal sparsity: how few latents it takes to rebuild r from an SAE's decoder (REFERENCE 2).

Latents are ranked by |mean f(harmful) - mean f(harmless)|, as Kissane et al. rank them. For each
k in 1, 2, 4, ..., 512 (capped at d_sae), r is fitted by a linear combination of the decoder rows
of the top k latents. Kissane et al. fit the coefficients with Adam; the problem is plain least
squares, so we solve it exactly with `torch.linalg.lstsq` (float64): the curve is then a property
of the SAE alone, with no optimiser settings in it. Reported per k: relative MSE
`|W_k^T c - r|^2 / |r|^2` and the cosine of the fit with r.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from sae_interp.evals._refusal import RefusalActivations, mean_latent_difference
from sae_interp.sae.base import SAE

__all__ = [
    "EVAL_TYPE_ID_REFUSAL_SPARSITY",
    "RefusalSparsityResult",
    "evaluate_refusal_sparsity",
    "sparsity_ks",
]

EVAL_TYPE_ID_REFUSAL_SPARSITY = "refusal_sparsity"


def sparsity_ks(d_sae: int, max_k: int = 512) -> list[int]:
    """1, 2, 4, ..., max_k, each capped at d_sae (so the last point uses every latent when d_sae < max_k)."""
    if d_sae <= 0 or max_k <= 0:
        raise ValueError(f"d_sae and max_k must be > 0, got {d_sae} and {max_k}")
    ks, k = set(), 1
    while k <= max_k:
        ks.add(min(k, d_sae))
        k *= 2
    return sorted(ks)


@dataclass(frozen=True)
class RefusalSparsityResult:
    """The curve (`ks`, `relative_mse`) plus SAEBench-style metrics and per-k details."""

    ks: list[int]
    relative_mse: list[float]
    metrics: dict[str, dict[str, Any]]
    details: list[dict[str, Any]]
    """One row per k: k, relative_mse, cosine, and the latents used."""


@torch.inference_mode()
def evaluate_refusal_sparsity(
    sae: SAE, acts: RefusalActivations, *, max_k: int = 512
) -> RefusalSparsityResult:
    """Relative MSE of the best rebuild of r from the decoder rows of the top-k latents.

    Args:
        sae: any SAE whose d_in is the width of `acts`.
        acts: last-position residuals of harmful and harmless prompts at the SAE's layer.
        max_k: the largest k (capped at d_sae).

    Returns:
        The curve, metrics (`relative_mse_at_k` per k; `summary` with the smallest k reaching a
        relative MSE below 0.5 and 0.1, -1 when none does) and per-k details.
    """
    r = acts.r.double().cpu()
    ranking = mean_latent_difference(sae, acts).abs().argsort(descending=True)
    w_dec = sae.W_dec.detach().double().cpu()
    ks = sparsity_ks(sae.cfg.d_sae, max_k)
    errors, details = [], []
    for k in ks:
        idx = ranking[:k]
        basis = w_dec[idx].T  # [d_in, k]
        # gelsd (SVD): decoder rows can be nearly parallel, and the default driver (gelsy) was seen
        # to return a zero solution for a rank-deficient basis.
        coef = torch.linalg.lstsq(basis, r[:, None], driver="gelsd").solution
        fit = (basis @ coef).squeeze(-1)
        error = float((fit - r).pow(2).sum() / r.pow(2).sum())
        errors.append(error)
        cosine = float(F.cosine_similarity(fit, r, dim=0)) if fit.norm() > 0 else 0.0
        details.append({"k": k, "relative_mse": error, "cosine": cosine, "latents": idx.tolist()})

    def first_k_below(threshold: float) -> int:
        return next((k for k, e in zip(ks, errors, strict=True) if e < threshold), -1)

    metrics = {
        "relative_mse_at_k": {f"k_{k}": e for k, e in zip(ks, errors, strict=True)},
        "summary": {"min_k_below_0.5": first_k_below(0.5), "min_k_below_0.1": first_k_below(0.1)},
    }
    return RefusalSparsityResult(ks, errors, metrics, details)

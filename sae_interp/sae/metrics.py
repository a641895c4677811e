"""SAE quality metrics that need no model: sparsity, reconstruction fidelity, latent usage.

Definitions (SAEBench "core" metrics, computed over one batch of rows):
- L0: mean number of nonzero latents per row.
- FVU: sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 (mean over the batch); explained variance = 1 - FVU.
- reconstruction cosine: mean over rows of cos(x, x_hat).
- relative norm: mean over rows of ||x_hat|| / ||x|| (below 1 means shrinkage).
- dead / dense fractions: from per-latent firing counts over n tokens.
All reductions run in float32 (or float64 input), whatever the input dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "dead_fraction",
    "dense_fraction",
    "explained_variance",
    "fvu",
    "l0",
    "reconstruction_cosine",
    "relative_norm",
]


def _f(t: Tensor) -> Tensor:
    t = t.detach()
    return t if t.dtype == torch.float64 else t.float()


def _rows(t: Tensor) -> Tensor:
    return _f(t).reshape(-1, t.shape[-1])


def l0(acts: Tensor) -> float:
    """acts: [..., d_sae] -> mean count of nonzero latents per row."""
    return float((_rows(acts) != 0).sum(-1).float().mean())


def fvu(x: Tensor, recon: Tensor) -> float:
    """x, recon: [..., d_in] -> fraction of variance unexplained (0 is perfect, 1 is predicting the mean)."""
    x, recon = _rows(x), _rows(recon)
    total = (x - x.mean(0)).pow(2).sum()
    return float((x - recon).pow(2).sum() / total.clamp_min(torch.finfo(total.dtype).tiny))


def explained_variance(x: Tensor, recon: Tensor) -> float:
    """x, recon: [..., d_in] -> 1 - FVU."""
    return 1.0 - fvu(x, recon)


def reconstruction_cosine(x: Tensor, recon: Tensor) -> float:
    """x, recon: [..., d_in] -> mean cosine similarity between each row and its reconstruction."""
    return float(torch.nn.functional.cosine_similarity(_rows(x), _rows(recon), dim=-1).mean())


def relative_norm(x: Tensor, recon: Tensor) -> float:
    """x, recon: [..., d_in] -> mean of ||recon|| / ||x|| per row."""
    x, recon = _rows(x), _rows(recon)
    return float((recon.norm(dim=-1) / x.norm(dim=-1).clamp_min(1e-12)).mean())


def dead_fraction(firing_counts: Tensor) -> float:
    """firing_counts: [d_sae] tokens on which each latent fired -> fraction that never fired."""
    return float((firing_counts == 0).float().mean())


def dense_fraction(firing_counts: Tensor, n_tokens: int, *, threshold: float = 0.1) -> float:
    """firing_counts: [d_sae] -> fraction of latents firing on more than `threshold` of n_tokens tokens."""
    if n_tokens <= 0:
        raise ValueError(f"n_tokens must be > 0, got {n_tokens}")
    return float((firing_counts.double() / n_tokens > threshold).double().mean())

"""Rank an SAE's latents by how they relate to the refusal direction r.

Three measures per latent, saved as a table (refusal/latents.csv):
- cosine: cosine of the latent's decoder row with r (is the latent's write direction r?);
- mean_diff: mean activation on harmful minus harmless instructions at the SAE's layer, last
  position (does the latent respond to what r separates?);
- attribution: gradient x activation of the refusal score on harmful instructions (does the latent
  drive refusal?), from `refusal.attribution` when the caller computed it (it needs the model).
Rank 1 is the largest cosine: the latents whose decoder rows are closest to r are what the main job
explains. Pure torch: the caller supplies the residual activations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from sae_interp._io import atomic_write_bytes
from sae_interp.sae.base import SAE

__all__ = [
    "AlignedLatent",
    "check_sae_width",
    "decoder_cosines",
    "mean_activation_difference",
    "rank_aligned_latents",
    "write_latent_table",
]


@dataclass(frozen=True)
class AlignedLatent:
    latent: int
    cosine: float
    mean_diff: float
    rank: int
    attribution: float | None = None


def check_sae_width(sae: SAE, x: Tensor) -> None:
    """Raise unless `x` has the SAE's input width.

    Raises:
        ValueError: naming both widths.
    """
    if sae.cfg.d_in != x.shape[-1]:
        raise ValueError(
            f"SAE d_in={sae.cfg.d_in} but the activations have width {x.shape[-1]}: an SAE only "
            "rebuilds directions of the model (and layer) it was trained on"
        )


def decoder_cosines(sae: SAE, direction: Tensor) -> Tensor:
    """Cosine of every decoder row with `direction` [d_in], [d_sae] float64.

    A norm scaling factor multiplies every decoder row by the same scalar, so it leaves these unchanged.
    """
    check_sae_width(sae, direction)
    w_dec = sae.W_dec.detach().double().cpu()
    return torch.nn.functional.cosine_similarity(w_dec, direction.double().cpu()[None, :], dim=-1)


@torch.inference_mode()
def mean_activation_difference(sae: SAE, harmful: Tensor, harmless: Tensor) -> Tensor:
    """mean f(harmful) - mean f(harmless) per latent, [d_sae] float64 (Kissane's latent ranking)."""
    check_sae_width(sae, harmful)
    check_sae_width(sae, harmless)
    encode = lambda x: sae.encode(x.to(sae.device, sae.dtype)).double().mean(0).cpu()  # noqa: E731
    return encode(harmful) - encode(harmless)


def rank_aligned_latents(
    sae: SAE, r: Tensor, harmful: Tensor, harmless: Tensor, attribution: Tensor | None = None
) -> list[AlignedLatent]:
    """Every latent of `sae`, best-aligned first.

    Args:
        sae: an SAE at the layer of `r`.
        r: the refusal direction [d_in] (any norm).
        harmful, harmless: residual activations [n, d_in] at the SAE's layer (last position).
        attribution: per-latent refusal attribution [d_sae] (`refusal_attribution`), if computed.

    Raises:
        ValueError: the widths disagree.
    """
    cosine = decoder_cosines(sae, r)
    mean_diff = mean_activation_difference(sae, harmful, harmless)
    if attribution is not None and attribution.shape != (sae.cfg.d_sae,):
        raise ValueError(f"attribution has shape {tuple(attribution.shape)}, expected ({sae.cfg.d_sae},)")
    order = torch.argsort(cosine, descending=True).tolist()
    return [
        AlignedLatent(
            latent=i,
            cosine=float(cosine[i]),
            mean_diff=float(mean_diff[i]),
            rank=rank,
            attribution=None if attribution is None else float(attribution[i]),
        )
        for rank, i in enumerate(order, 1)
    ]


def write_latent_table(path: str | Path, latents: list[AlignedLatent]) -> None:
    """Write the table as CSV (latent, cosine, mean_diff, attribution, rank), atomically.

    The attribution cell is empty for latents ranked without one.
    """
    lines = ["latent,cosine,mean_diff,attribution,rank"]
    for a in latents:
        attribution = "" if a.attribution is None else f"{a.attribution:.6g}"
        lines.append(f"{a.latent},{a.cosine:.6f},{a.mean_diff:.6f},{attribution},{a.rank}")
    atomic_write_bytes(Path(path), ("\n".join(lines) + "\n").encode())

"""Rank an SAE's latents by how they relate to the refusal direction r.

Two measures per latent, saved as a table (refusal/latents.csv):
- cosine: cosine of the latent's decoder row with r (is the latent's write direction r?);
- mean_diff: mean activation on harmful minus harmless instructions at the SAE's layer, last
  position (does the latent respond to what r separates?).
Rank 1 is the largest cosine: the latents whose decoder rows are closest to r are what the main job
explains. Pure torch: the caller supplies the residual activations.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from sae_interp._io import atomic_write_bytes
from sae_interp.sae.base import SAE

__all__ = ["AlignedLatent", "rank_aligned_latents", "read_latent_table", "write_latent_table"]


@dataclass(frozen=True)
class AlignedLatent:
    latent: int
    cosine: float
    mean_diff: float
    rank: int


@torch.no_grad()
def rank_aligned_latents(sae: SAE, r: Tensor, harmful: Tensor, harmless: Tensor) -> list[AlignedLatent]:
    """Every latent of `sae`, best-aligned first.

    Args:
        sae: an SAE at the layer of `r`.
        r: the refusal direction [d_in] (any norm).
        harmful, harmless: residual activations [n, d_in] at the SAE's layer (last position).

    Raises:
        ValueError: the widths disagree.
    """
    d_in = sae.W_dec.shape[1]
    if r.shape[-1] != d_in or harmful.shape[-1] != d_in or harmless.shape[-1] != d_in:
        raise ValueError(
            f"widths disagree: SAE d_in={d_in}, r {list(r.shape)}, harmful {list(harmful.shape)}, "
            f"harmless {list(harmless.shape)}; is the SAE from this model and layer?"
        )
    w_dec = sae.W_dec.float()
    cosine = torch.nn.functional.cosine_similarity(w_dec, r.float().to(w_dec.device)[None], dim=1)
    mean_diff = sae.encode(harmful.to(sae.device, sae.dtype)).float().mean(0) - sae.encode(
        harmless.to(sae.device, sae.dtype)
    ).float().mean(0)
    order = torch.argsort(cosine, descending=True).tolist()
    return [
        AlignedLatent(latent=i, cosine=float(cosine[i]), mean_diff=float(mean_diff[i]), rank=rank)
        for rank, i in enumerate(order, 1)
    ]


def write_latent_table(path: str | Path, latents: list[AlignedLatent]) -> None:
    """Write the table as CSV (latent, cosine, mean_diff, rank), atomically."""
    lines = ["latent,cosine,mean_diff,rank"]
    lines += [f"{a.latent},{a.cosine:.6f},{a.mean_diff:.6f},{a.rank}" for a in latents]
    atomic_write_bytes(Path(path), ("\n".join(lines) + "\n").encode())


def read_latent_table(path: str | Path) -> list[AlignedLatent]:
    """The table `write_latent_table` wrote."""
    with open(path, newline="") as f:
        return [
            AlignedLatent(int(row["latent"]), float(row["cosine"]), float(row["mean_diff"]), int(row["rank"]))
            for row in csv.DictReader(f)
        ]

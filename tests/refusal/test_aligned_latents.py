"""The aligned-latent ranking: an SAE whose decoder holds r puts that latent first."""

from __future__ import annotations

import itertools

import pytest
import torch

from sae_interp.refusal.latents import rank_aligned_latents, write_latent_table
from sae_interp.sae import SAEConfig, build_sae


def test_latent_holding_r_ranks_first(tmp_path) -> None:
    torch.manual_seed(0)
    d, d_sae, planted = 16, 32, 11
    r = torch.randn(d)
    sae = build_sae(SAEConfig(d_in=d, d_sae=d_sae, architecture="topk", k=4))
    with torch.no_grad():
        sae.W_dec.copy_(torch.nn.functional.normalize(torch.randn(d_sae, d), dim=1))
        sae.W_dec[planted] = r / r.norm()
        sae.W_enc.copy_(sae.W_dec.T)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    harmful, harmless = torch.randn(20, d) + 3 * r / r.norm(), torch.randn(20, d)
    ranked = rank_aligned_latents(sae, r, harmful, harmless)
    assert [a.rank for a in ranked] == list(range(1, d_sae + 1))
    assert ranked[0].latent == planted and ranked[0].cosine == pytest.approx(1.0, abs=1e-6)
    assert ranked[0].mean_diff > 1.0  # it also fires more on the harmful side
    assert all(a.cosine >= b.cosine for a, b in itertools.pairwise(ranked))
    write_latent_table(tmp_path / "latents.csv", ranked)
    lines = (tmp_path / "latents.csv").read_text().splitlines()
    assert lines[0] == "latent,cosine,mean_diff,attribution,rank" and lines[1].startswith(
        f"{planted},1.000000,"
    )
    assert lines[1].endswith(",,1")  # no attribution given: an empty cell


def test_width_mismatch_is_a_clear_error() -> None:
    sae = build_sae(SAEConfig(d_in=8, d_sae=16, architecture="topk", k=2))
    with pytest.raises(ValueError, match="SAE d_in=8 but the activations have width 9"):
        rank_aligned_latents(sae, torch.randn(9), torch.randn(2, 8), torch.randn(2, 8))

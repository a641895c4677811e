"""Refusal evaluations on SAEs built so the answer is known: one holding r as a decoder row, one blind to r.

Both SAEs are lossless rotations: `relu(Q^T x) - relu(-Q^T x) = Q^T x`, decoded by Q. In the first,
Q's first column is r_hat, so latent 0 is r; in the second, the r_hat column is dropped, so the SAE
reconstructs exactly the part of x orthogonal to r and its difference of means is zero.
"""

from __future__ import annotations

import json

import pytest
import torch

from sae_interp.evals import (
    LatentSteeringConfig,
    RefusalActivations,
    RefusalPromptConfig,
    collect_refusal_activations,
    evaluate_latent_steering,
    evaluate_refusal_fidelity,
    evaluate_refusal_sparsity,
    saebench_record,
    sparsity_ks,
    write_eval_record,
)
from sae_interp.models import load_model
from sae_interp.sae import SAEConfig, build_sae
from sae_interp.sae.io import load_sae, save_sae

D = 16


def _acts(d: int = D, n: int = 64, shift: float = 5.0) -> RefusalActivations:
    """Gaussian harmless residuals; harmful ones shifted along a random direction."""
    direction = torch.nn.functional.normalize(torch.randn(d), dim=0)
    return RefusalActivations(3, torch.randn(n, d) + shift * direction, torch.randn(n, d))


def _rotation_sae(r: torch.Tensor, *, keep_r: bool):
    """A lossless 'standard' SAE on the basis Q = [r_hat, complement]; without r_hat when keep_r=False."""
    d = r.shape[0]
    q = torch.linalg.qr(torch.cat([r[:, None], torch.randn(d, d - 1)], dim=1)).Q
    q = q * torch.sign(q[:, :1].T @ r)[0] if keep_r else q[:, 1:]  # first column +r_hat, not -r_hat
    sae = build_sae(SAEConfig(d_in=d, d_sae=2 * q.shape[1], architecture="standard"))
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([q, -q], dim=1))
        sae.W_dec.copy_(torch.cat([q.T, -q.T], dim=0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def test_sae_holding_r_captures_it_exactly(tmp_path) -> None:
    acts = _acts()
    sae = _rotation_sae(acts.r, keep_r=True)
    fidelity = evaluate_refusal_fidelity(sae, acts)
    recon, single = fidelity.metrics["reconstruction"], fidelity.metrics["single_latent"]
    assert recon["recon_cosine"] == pytest.approx(1.0, abs=1e-5)
    assert recon["recon_relative_mse"] == pytest.approx(0.0, abs=1e-6)
    assert recon["recon_norm_ratio"] == pytest.approx(1.0, abs=1e-5)
    assert single["max_decoder_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert single["max_decoder_cosine_latent"] == 0 and fidelity.details[0]["index"] == 0
    sparsity = evaluate_refusal_sparsity(sae, acts)
    assert sparsity.ks == [1, 2, 4, 8, 16, 32]  # capped at d_sae = 32
    assert sparsity.details[0]["latents"] == [0]  # r's latent has the largest activation difference
    assert sparsity.relative_mse[0] == pytest.approx(0.0, abs=1e-10)
    assert max(sparsity.relative_mse) < 1e-8, sparsity.relative_mse
    assert sparsity.metrics["summary"]["min_k_below_0.1"] == 1
    # A SAELens-format round trip gives the same answers: the evals only use the SAE interface.
    loaded = load_sae(save_sae(sae, tmp_path / "sae"))
    again = evaluate_refusal_fidelity(loaded, acts).metrics
    assert again["reconstruction"]["recon_cosine"] == pytest.approx(recon["recon_cosine"], abs=1e-6)


def test_sae_blind_to_r_captures_nothing() -> None:
    acts = _acts()
    sae = _rotation_sae(acts.r, keep_r=False)
    metrics = evaluate_refusal_fidelity(sae, acts).metrics
    # The reconstructed difference is zero up to float32 rounding, so its direction is rounding noise.
    assert metrics["reconstruction"]["recon_norm_ratio"] < 1e-5
    assert metrics["reconstruction"]["recon_cosine"] == pytest.approx(0.0, abs=1e-2)
    assert metrics["reconstruction"]["recon_relative_mse"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["reconstruction"]["error_cosine"] == pytest.approx(1.0, abs=1e-5)  # r lives in the error
    assert metrics["single_latent"]["max_abs_decoder_cosine"] == pytest.approx(0.0, abs=1e-5)
    sparsity = evaluate_refusal_sparsity(sae, acts)
    assert all(e == pytest.approx(1.0, abs=1e-6) for e in sparsity.relative_mse)
    assert sparsity.metrics["summary"] == {"min_k_below_0.5": -1, "min_k_below_0.1": -1}


def test_sparsity_ks_and_width_check() -> None:
    assert sparsity_ks(4096) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert sparsity_ks(300) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    acts = _acts()
    wrong = build_sae(SAEConfig(d_in=D + 1, d_sae=8, architecture="topk", k=2))
    with pytest.raises(ValueError, match="width"):
        evaluate_refusal_sparsity(wrong, acts)


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    return load_model(tiny_llama_dir, dtype=torch.float32, device="cpu")


def test_latent_steering_on_a_tiny_model(tiny, tmp_path) -> None:
    acts = collect_refusal_activations(tiny, 1, RefusalPromptConfig(n_prompts=8))
    assert acts.harmful.shape == (8, tiny.spec.d_model) and acts.layer == 1
    sae = _rotation_sae(acts.r, keep_r=True)
    cfg = LatentSteeringConfig(n_latents=2, n_together=2, n_score_prompts=4, n_generate=2, max_new_tokens=3)
    result = evaluate_latent_steering(tiny, sae, acts.r, cfg)
    score = result.metrics["refusal_score"]
    # Latent 0's decoder row is r_hat: ablating it is ablating r.
    assert score["ablate_top_latent"] == pytest.approx(score["ablate_r"], abs=1e-4)
    assert score["fraction_of_r_effect_top_latent"] == pytest.approx(1.0, abs=1e-3)
    names = [row["condition"] for row in result.details]
    assert names[:3] == ["baseline", "ablate_r", "ablate_latent_0"] and names[4] == "ablate_top_2"
    assert names[3].startswith("ablate_latent_")
    rates = result.metrics["refusal_rate"]
    assert set(rates) == {"baseline", "ablate_r", "ablate_latent_0", "ablate_top_2"}
    assert all(0.0 <= v <= 1.0 for v in rates.values())
    record = saebench_record("latent_steering", {"layer": 1}, result.metrics, result.details, sae)
    data = json.loads(write_eval_record(tmp_path / "steer.json", record).read_text())
    assert (
        data["eval_type_id"] == "latent_steering" and data["sae_cfg_dict"]["d_sae"] == 2 * tiny.spec.d_model
    )
    assert data["eval_result_details"][0]["generations"]  # the generations behind the rates are kept

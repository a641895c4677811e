"""Core evaluation on gemma-3-270m: the CE loss score is 1 for an identity SAE and 0 for a zero one."""

from __future__ import annotations

import json
import math

import pytest
import torch

from sae_interp.data import TokenizeConfig, tokenize_rows
from sae_interp.evals import CoreEvalConfig, core_eval_record, evaluate_core, write_core_eval
from sae_interp.sae import SAEConfig, build_sae

LAYER = 6


@pytest.fixture(scope="module")
def rows(gemma):
    return tokenize_rows("web", gemma.tokenizer, TokenizeConfig(ctx_len=16), n_rows=2)


def _identity_sae(d: int):
    """relu(x) - relu(-x) = x exactly: W_enc = [I, -I], W_dec = [I; -I], zero biases."""
    sae = build_sae(SAEConfig(d_in=d, d_sae=2 * d, architecture="standard"))
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def test_identity_sae_scores_one(gemma, rows, tmp_path) -> None:
    sae = _identity_sae(gemma.spec.d_model)
    cfg = CoreEvalConfig(batch_size=2)
    result = evaluate_core(gemma, sae, LAYER, rows.tokens, cfg=cfg, progress=False)
    m = result.metrics
    perf = m["model_performance_preservation"]
    assert perf["ce_loss_with_ablation"] > perf["ce_loss_without_sae"] + 1  # ablation really hurts
    assert perf["ce_loss_score"] == pytest.approx(1.0, abs=1e-4)
    assert m["model_behavior_preservation"]["kl_div_with_sae"] == pytest.approx(0.0, abs=1e-4)
    assert m["reconstruction_quality"]["fvu"] == pytest.approx(0.0, abs=1e-6)
    assert m["reconstruction_quality"]["cossim"] == pytest.approx(1.0, abs=1e-6)
    assert m["shrinkage"]["l2_ratio"] == pytest.approx(1.0, abs=1e-6)
    assert result.n_tokens == 2 * 15 and result.n_predictions == 2 * 14  # BOS left out
    record = core_eval_record(
        result,
        sae,
        cfg,
        model_name="gemma-3-270m",
        model_dtype="float32",
        dataset="web",
        context_size=16,
        n_rows=2,
    )
    path = write_core_eval(tmp_path / "core.json", record)
    data = json.loads(path.read_text())
    assert data["eval_type_id"] == "core" and data["sae_cfg_dict"]["d_sae"] == 2 * gemma.spec.d_model
    assert set(data["eval_result_metrics"]) >= {
        "model_behavior_preservation",
        "model_performance_preservation",
        "reconstruction_quality",
        "shrinkage",
        "sparsity",
    }
    assert len(data["eval_result_details"]) == 2 * gemma.spec.d_model


def test_zero_sae_scores_zero_and_counts_dead_latents(gemma, rows) -> None:
    sae = build_sae(SAEConfig(d_in=gemma.spec.d_model, d_sae=64, architecture="topk", k=4))
    with torch.no_grad():
        sae.W_dec.zero_()
        sae.b_dec.zero_()
        sae.b_enc[:32] = -1e6  # these latents can never fire
    result = evaluate_core(gemma, sae, LAYER, rows.tokens, cfg=CoreEvalConfig(batch_size=2), progress=False)
    m = result.metrics
    assert m["model_performance_preservation"]["ce_loss_score"] == pytest.approx(0.0, abs=1e-4)
    assert m["model_behavior_preservation"]["kl_div_score"] == pytest.approx(0.0, abs=1e-4)
    assert m["sparsity"]["l0"] <= 4
    assert m["misc_metrics"]["dead_fraction"] >= 0.5
    assert int(result.firing_counts[:32].sum()) == 0
    assert not math.isnan(m["reconstruction_quality"]["fvu"])


def test_padding_and_width_checks(gemma, rows) -> None:
    sae = _identity_sae(gemma.spec.d_model)
    lengths = torch.tensor([16, 9])
    result = evaluate_core(gemma, sae, LAYER, rows.tokens, lengths=lengths, progress=False)
    assert result.n_tokens == 15 + 8 and result.n_predictions == 14 + 7
    with pytest.raises(ValueError, match="d_in"):
        evaluate_core(gemma, build_sae(SAEConfig(d_in=8, d_sae=16, k=2)), LAYER, rows.tokens)

"""Refusal attribution: gradient x activation predicts what zeroing a latent does to the refusal score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sae_interp.models import load_model
from sae_interp.models.interventions import Splice, intervene
from sae_interp.models.prompts import PromptBatch
from sae_interp.refusal.attribution import refusal_attribution
from sae_interp.refusal.metrics import refusal_scores
from sae_interp.sae import SAEConfig, build_sae

LAYER, TOKENS = 1, [5, 9]


@pytest.fixture(scope="module")
def setup(tiny_llama_dir):
    torch.manual_seed(0)
    # float64: the effects of one latent on a tiny random model are ~1e-5, near float32 noise.
    model = load_model(str(tiny_llama_dir), dtype=torch.float64, device="cpu")
    sae = build_sae(SAEConfig(d_in=model.spec.d_model, d_sae=48, architecture="relu")).double()
    with torch.no_grad():
        sae.W_enc.mul_(0.3)  # small activations: the first-order estimate should then be close
    ids = torch.randint(4, 40, (6, 7))
    mask = torch.ones_like(ids)
    mask[:2, :2] = 0  # two left-padded rows
    ids[mask == 0] = 3
    return model, sae, PromptBatch(ids, mask)


def _mean_score(model, sae, prompts, zero_latent: int | None = None) -> float:
    """Mean refusal score with the SAE spliced in as decode(f) + error, optionally one latent zeroed."""

    def splice(x: torch.Tensor) -> torch.Tensor:
        f = sae.encode(x)
        error = x - sae.decode(f)
        if zero_latent is not None:
            keep = prompts.attention_mask.bool() & (prompts.attention_mask.cumsum(-1) > 1)
            f = f.clone()
            f[..., zero_latent] = torch.where(keep, 0.0, f[..., zero_latent])
        return sae.decode(f) + error

    with torch.inference_mode(), intervene(model, [Splice(LAYER, splice)]):
        logits = model.hf(input_ids=prompts.input_ids, attention_mask=prompts.attention_mask).logits[:, -1]
    return float(refusal_scores(logits.log_softmax(-1), TOKENS).mean())


def test_attribution_predicts_the_effect_of_zeroing_each_latent(setup) -> None:
    model, sae, prompts = setup
    attribution = refusal_attribution(model, sae, LAYER, prompts, TOKENS, batch_size=4)
    assert attribution.shape == (48,) and attribution.dtype == torch.float64
    full = _mean_score(model, sae, prompts)
    effect = np.array([full - _mean_score(model, sae, prompts, zero_latent=i) for i in range(48)])
    estimate = attribution.numpy()
    assert np.abs(effect).max() > 1e-6  # latents do move the score
    assert np.corrcoef(estimate, effect)[0, 1] > 0.95
    top = np.argsort(-np.abs(effect))[:5]
    assert (np.sign(estimate[top]) == np.sign(effect[top])).all()


def test_splice_leaves_the_forward_unchanged(setup) -> None:
    model, sae, prompts = setup
    with torch.inference_mode():
        plain = model.hf(input_ids=prompts.input_ids, attention_mask=prompts.attention_mask).logits[:, -1]
    plain_score = float(refusal_scores(plain.log_softmax(-1), TOKENS).mean())
    assert _mean_score(model, sae, prompts) == pytest.approx(plain_score, abs=1e-5)


def test_wrong_width_is_a_clear_error(setup) -> None:
    model, _, prompts = setup
    sae = build_sae(SAEConfig(d_in=32, d_sae=8, architecture="relu"))
    with pytest.raises(ValueError, match=r"SAE d_in=32 but .* d_model=64"):
        refusal_attribution(model, sae, LAYER, prompts, TOKENS)

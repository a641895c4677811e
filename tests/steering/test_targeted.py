"""Targeted vectors: the SAE-TS formula, and on gemma a targeted vector raises its target latent
more than a random vector of the same norm."""

from __future__ import annotations

import pytest
import torch

from sae_interp.steering import (
    AdapterConfig,
    EffectApproximator,
    fit_approximator,
    measure_effects,
    target_effect,
    targeted_direction,
)
from sae_interp.steering.targeted import _selective_rise


def test_targeted_direction_follows_the_formula() -> None:
    w, b = torch.randn(6, 10), torch.randn(10)
    t = target_effect([2, 5], 10, [1.0, 0.5])
    assert t.nonzero().flatten().tolist() == [2, 5]

    def n(v: torch.Tensor) -> torch.Tensor:
        return v / v.norm()

    s = targeted_direction(EffectApproximator(w, b), t, lam=0.7)
    torch.testing.assert_close(s, n(n(w @ t) - 0.7 * n(w @ b)))
    assert abs(float(s.norm()) - 1) < 1e-5


def test_targeted_vector_beats_a_random_vector_of_the_same_norm(gemma_effects) -> None:
    g = gemma_effects
    approx = fit_approximator(g.directions, g.effects, AdapterConfig(), w_enc=g.sae.W_enc)
    # target: the latent the measured decoder rows moved most (a latent this model can be steered to)
    target = int(g.effects.max(0).values.argmax())
    s = targeted_direction(approx, target_effect([target], g.sae.cfg.d_sae))
    r = torch.randn(s.shape[0], generator=torch.Generator().manual_seed(1))
    vectors = torch.stack([s, r / r.norm()]) * g.scale
    zero = torch.zeros(1, s.shape[0])
    measured = measure_effects(g.model, g.sae, g.layer, g.prompts, torch.cat([zero, vectors]), g.cfg, seed=0)
    gain = measured[1:, target] - measured[0, target]
    assert gain[0] > gain[1] + 0.1, gain


def test_target_latents_prefer_a_selective_rise_to_a_dense_one() -> None:
    # latent 0: dense (60 vs 40), latent 1: selective (15 vs 0.5), latent 2: falls, latent 3: small
    pos, neg = torch.tensor([60.0, 15.0, 1.0, 2.0]), torch.tensor([40.0, 0.5, 9.0, 0.0])
    latents, rises = _selective_rise(pos, neg, 2)
    assert latents == [1, 0] and rises == pytest.approx([14.5, 20.0])

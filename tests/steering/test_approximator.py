"""The effect approximator: exact on a synthetic linear map; on real effects measured on gemma,
better than the SAE encoding always, and better than both trivial predictors where the directions
come from a family small enough for a unit test's budget."""

from __future__ import annotations

import torch

from sae_interp.steering import (
    AdapterConfig,
    EffectApproximator,
    evaluate_predictions,
    fit_adam,
    fit_approximator,
    fit_ridge,
    measure_effects,
    split_indices,
)


def test_ridge_and_adam_learn_a_linear_map() -> None:
    x = torch.randn(300, 16)
    w, b = torch.randn(16, 24), torch.randn(24)
    y = x @ w + b
    cfg = AdapterConfig(prior="zero", ridge_alphas=(1e-6, 1e-3))
    ridge, _alpha = fit_ridge(x, y, cfg)
    torch.testing.assert_close(ridge.W, w, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(ridge.b, b, atol=1e-3, rtol=1e-3)
    adam = fit_adam(x, y, AdapterConfig(method="adam", lr=0.1, epochs=150, batch_size=300))
    assert (adam(x) - y).pow(2).mean() < 1e-3 * y.pow(2).mean()
    # the encoder prior is only a starting point: with data, the map is still recovered
    prior_fit, _ = fit_ridge(x, y, AdapterConfig(ridge_alphas=(1e-6,)), w_enc=torch.randn(16, 24))
    torch.testing.assert_close(prior_fit.W, w, atol=1e-3, rtol=1e-3)


def test_save_and_load_round_trip(tmp_path) -> None:
    approx = EffectApproximator(torch.randn(8, 5), torch.randn(5))
    approx.save(tmp_path, {"layer": 3})
    again = EffectApproximator.load(tmp_path)
    s = torch.randn(4, 8)
    torch.testing.assert_close(again(s), approx(s))


def test_on_held_out_gemma_effects_beats_the_encoding_and_matches_the_mean(gemma_effects) -> None:
    """40 greedy effects (2 prompts x 8 tokens) are what a unit test can afford on 2 CPU cores.

    At that size the per-vector part of an effect is mostly token-flip noise, so no linear map can
    beat the mean effect by a margin (measured: MSE within ~1% of it, either way, over splits);
    the paper uses 50k vectors. What must hold: the approximator beats the SAE encoding of the
    vector by far, and shrinkage keeps it from doing worse than the mean. The experiment reports
    all three on its larger collection.
    """
    x, y = gemma_effects.directions, gemma_effects.effects
    cfg = AdapterConfig()
    train, test = split_indices(x.shape[0], cfg.test_fraction, cfg.seed)
    approx = fit_approximator(x[train], y[train], cfg, w_enc=gemma_effects.sae.W_enc)
    scores = evaluate_predictions(approx, x, y, train, test, sae=gemma_effects.sae, scale=gemma_effects.scale)
    adapter, mean, encoding = scores["adapter"], scores["mean_effect"], scores["sae_encoding"]
    assert adapter["mse"] < 0.9 * encoding["mse"] and adapter["cosine"] > encoding["cosine"] + 0.2, scores
    assert adapter["mse"] < 1.03 * mean["mse"] and adapter["cosine"] > mean["cosine"] - 0.02, scores


def test_in_a_low_dimensional_family_the_adapter_beats_both_baselines(gemma_effects) -> None:
    """Directions mixed from the 4 decoder rows that moved the text most, with Gaussian weights.

    A linear map of a 4-dimensional family is learnable from 52 measured vectors, where one over all
    640 dimensions needs thousands (the test above): the 12 held out are then predicted better than
    by the mean effect and by the SAE encoding, which is what the approximator is for. Measured over
    4 weight seeds (fp32): adapter / mean-effect MSE 0.69-0.87, cosine above the mean's by 0.02-0.12.
    """
    g = gemma_effects
    moved = (g.effects - g.effects.mean(0)).norm(dim=1)
    basis = g.directions[moved.argsort(descending=True)[:4]]
    weights = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    x = torch.nn.functional.normalize(weights @ basis, dim=1)
    steer = torch.cat([torch.zeros(1, x.shape[1]), x * g.scale])  # row 0: unsteered
    measured = measure_effects(g.model, g.sae, g.layer, g.prompts, steer, g.cfg, seed=0)
    y = measured[1:] - measured[0]
    train, test = torch.arange(52), torch.arange(52, 64)
    approx = fit_approximator(x[train], y[train], AdapterConfig(), w_enc=g.sae.W_enc)
    scores = evaluate_predictions(approx, x, y, train, test, sae=g.sae, scale=g.scale)
    adapter, mean, encoding = scores["adapter"], scores["mean_effect"], scores["sae_encoding"]
    assert adapter["mse"] < 0.95 * mean["mse"] and adapter["mse"] < 0.9 * encoding["mse"], scores
    assert adapter["cosine"] > max(mean["cosine"], encoding["cosine"]), scores

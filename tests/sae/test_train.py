"""Training on synthetic sparse data: loss falls for every architecture, resume is exact, AuxK."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import torch

from sae_interp.sae import SAEConfig, TrainStepInputs, build_sae, metrics
from sae_interp.sae.train import TrainConfig, _lr_factor, geometric_median, train_sae

from .conftest import D_IN, SyntheticActivations

# per architecture: (k, TrainConfig overrides). The coefficients suit data with ||x||^2 ~ 4.
SETTINGS = {
    "topk": (8, {"lr": 1e-2}),
    "standard": (None, {"lr": 3e-3, "l1_coefficient": 0.2, "sparsity_warmup_steps": 20}),
    "jumprelu": (None, {"lr": 3e-3, "l0_coefficient": 0.03, "sparsity_warmup_steps": 20}),
}


@pytest.mark.parametrize("arch", list(SETTINGS))
def test_training_reduces_loss_and_fvu(synthetic: SyntheticActivations, arch: str) -> None:
    k, overrides = SETTINGS[arch]
    sae = build_sae(SAEConfig(d_in=D_IN, d_sae=128, architecture=arch, k=k))
    held_out = next(synthetic.batches(1, 512, seed=99))
    fvu_before = metrics.fvu(held_out, sae(held_out).recon)
    start = time.perf_counter()
    cfg = TrainConfig(total_steps=200, lr_warmup_steps=10, log_every=10, **overrides)
    result = train_sae(sae, synthetic.batches(200), cfg, progress=False)
    elapsed = time.perf_counter() - start
    with torch.no_grad():
        out = sae(held_out)
    fvu_after = metrics.fvu(held_out, out.recon)
    assert result.steps == 200 and result.tokens == 200 * 128 and len(result.history) == 20
    assert result.history[-1].loss < 0.5 * result.history[0].loss  # first record is after 10 steps
    assert fvu_after < min(0.3, 0.4 * fvu_before), (fvu_before, fvu_after)
    assert metrics.l0(out.acts) < 48  # sparse, and the penalty did work: L0 fell during training
    assert result.history[-1].l0 <= result.history[0].l0
    assert not sae.training
    print(f"{arch}: FVU {fvu_before:.3f} -> {fvu_after:.3f}, L0 {metrics.l0(out.acts):.1f}, {elapsed:.1f}s")


def test_topk_decoder_rows_stay_unit_norm(synthetic: SyntheticActivations) -> None:
    sae = build_sae(SAEConfig(d_in=D_IN, d_sae=128, architecture="topk", k=8))
    train_sae(sae, synthetic.batches(5), TrainConfig(total_steps=5, lr=1e-2), progress=False)
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(128))


def test_standard_decoder_rows_are_free(synthetic: SyntheticActivations) -> None:
    sae = build_sae(SAEConfig(d_in=D_IN, d_sae=128, architecture="standard"))
    train_sae(sae, synthetic.batches(20), TrainConfig(total_steps=20, lr=1e-2), progress=False)
    norms = sae.W_dec.norm(dim=1)
    assert not torch.allclose(norms, norms[0].expand_as(norms), atol=1e-3)


@pytest.mark.parametrize("arch", ["topk", "jumprelu"])
def test_checkpoint_resume_equals_uninterrupted(
    synthetic: SyntheticActivations, tmp_path: Path, arch: str
) -> None:
    k, overrides = SETTINGS[arch]
    cfg_sae = SAEConfig(d_in=D_IN, d_sae=128, architecture=arch, k=k)
    # dead threshold low enough that AuxK and the counters matter; cosine decay exercises the scheduler
    cfg = TrainConfig(
        **{**overrides, "lr": 3e-3},
        total_steps=30,
        lr_warmup_steps=5,
        lr_decay="cosine",
        lr_end=3e-4,
        checkpoint_every=10,
        dead_tokens_threshold=256,
    )
    torch.manual_seed(0)
    full = build_sae(cfg_sae)
    full_result = train_sae(full, synthetic.batches(30), cfg, progress=False)

    torch.manual_seed(0)
    first = build_sae(cfg_sae)
    partial_cfg = TrainConfig(**{**cfg.__dict__, "total_steps": 30})
    train_sae(
        first, synthetic.batches(12), partial_cfg, checkpoint_dir=tmp_path, progress=False
    )  # stops early
    resumed = build_sae(cfg_sae)  # fresh weights: everything must come from the checkpoint
    result = train_sae(resumed, synthetic.batches(30), cfg, checkpoint_dir=tmp_path, progress=False)

    assert result.steps == 30 and result.tokens == full_result.tokens
    for name, p in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], p, rtol=0, atol=0, msg=name)
    assert [r.loss for r in result.history] == [r.loss for r in full_result.history]
    assert result.dead_fraction == full_result.dead_fraction


def test_resume_rejects_other_sae_config(synthetic: SyntheticActivations, tmp_path: Path) -> None:
    sae = build_sae(SAEConfig(d_in=D_IN, d_sae=128, architecture="topk", k=8))
    train_sae(sae, synthetic.batches(2), TrainConfig(total_steps=2), checkpoint_dir=tmp_path, progress=False)
    other = build_sae(SAEConfig(d_in=D_IN, d_sae=128, architecture="topk", k=4))
    with pytest.raises(ValueError, match="different SAE config"):
        train_sae(
            other, synthetic.batches(2), TrainConfig(total_steps=4), checkpoint_dir=tmp_path, progress=False
        )


def test_auxk_nonzero_only_with_dead_latents(synthetic: SyntheticActivations) -> None:
    sae = build_sae(SAEConfig(d_in=D_IN, d_sae=128, architecture="topk", k=8))
    x = next(synthetic.batches(1))
    none_dead = sae(x, TrainStepInputs(dead_mask=torch.zeros(128, dtype=torch.bool)))
    assert none_dead.auxk is not None and none_dead.auxk.item() == 0.0
    assert sae(x, TrainStepInputs()).auxk.item() == 0.0
    dead = torch.zeros(128, dtype=torch.bool)
    dead[::4] = True
    some_dead = sae(x, TrainStepInputs(dead_mask=dead))
    assert some_dead.auxk.item() > 0
    some_dead.auxk.backward()
    grad_rows = sae.W_dec.grad.abs().sum(1) > 0
    assert grad_rows[dead].any() and not grad_rows[~dead].any()  # only dead latents are pushed


def test_dead_latents_are_counted(synthetic: SyntheticActivations) -> None:
    sae = build_sae(SAEConfig(d_in=D_IN, d_sae=128, architecture="topk", k=8))
    with torch.no_grad():
        sae.b_enc[:64] = -1e4  # half the latents can never fire
    cfg = TrainConfig(total_steps=6, lr=1e-9, dead_tokens_threshold=3 * 128, b_dec_init="zeros")
    result = train_sae(sae, synthetic.batches(6), cfg, progress=False)
    assert [r.dead_fraction for r in result.history] == [0, 0, 0, 0.5, 0.5, 0.5]


def test_lr_schedule_warmup_then_cosine() -> None:
    f = _lr_factor(TrainConfig(total_steps=11, lr=1.0, lr_end=0.1, lr_warmup_steps=2, lr_decay="cosine"))
    assert [f(0), f(1)] == [0.5, 1.0]
    assert f(2) == pytest.approx(1.0) and f(10) == pytest.approx(0.1)
    assert f(6) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    g = _lr_factor(TrainConfig(total_steps=11, lr_warmup_steps=0))
    assert g(0) == g(10) == 1.0


def test_geometric_median_resists_outliers() -> None:
    points = torch.cat([torch.randn(99, 3) * 0.01 + 1.0, torch.full((1, 3), 1e6)])
    torch.testing.assert_close(
        geometric_median(points), torch.ones(3, dtype=torch.float64), atol=0.01, rtol=0
    )
    assert points.mean(0)[0] > 1e3


def test_b_dec_initialised_from_first_batch(synthetic: SyntheticActivations) -> None:
    sae = build_sae(SAEConfig(d_in=D_IN, d_sae=128, architecture="topk", k=8))
    x = next(synthetic.batches(1))
    train_sae(sae, [x], TrainConfig(total_steps=1, lr=1e-12, b_dec_init="mean"), progress=False)
    torch.testing.assert_close(sae.b_dec.detach(), x.mean(0), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "kwargs", [{"total_steps": 0}, {"total_steps": 5, "lr_decay": "linear"}, {"total_steps": 5, "lr": 0}]
)
def test_train_config_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=r"train\."):
        TrainConfig(**kwargs)

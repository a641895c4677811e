"""The effect approximator of SAE-TS: a linear map from a steering direction to its feature effect.

`e_hat(s) = s @ W + b` with `W [d_model, d_sae]`, `b [d_sae]`. On a CPU a few hundred measured
vectors are all there is, fewer than d_model, so the default fit is closed-form ridge regression
with the penalty chosen on a validation slice of the training vectors; the paper's recipe (Adam,
cosine schedule, mini-batches) is kept as an option for large GPU collections.

Ridge shrinks W towards a prior. With no prior (0), a held-out direction nearly orthogonal to every
training direction (SAE decoder rows mostly are) gets little more than the mean effect. The default
prior `gamma * W_enc` (gamma a least-squares scalar on the training vectors) says "steering along
a latent's direction raises that latent": ridge then learns the corrections to it, so the fit is
never worse than the encoder guess on the training vectors and needs far fewer of them.

Evaluation reports held-out MSE and the mean cosine of predicted vs measured effects, next to two
trivial predictors: the mean training effect, and the SAE encoding of the scaled vector itself
(times a least-squares factor fitted on the training vectors, so that MSE compares fairly).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load_file, save
from torch import Tensor

from sae_interp._io import atomic_write_bytes, atomic_write_json, read_json
from sae_interp.config import check_choice, check_positive
from sae_interp.sae import SAE

__all__ = [
    "AdapterConfig",
    "EffectApproximator",
    "encoder_prior",
    "evaluate_predictions",
    "fit_adam",
    "fit_approximator",
    "fit_ridge",
    "split_indices",
]

logger = logging.getLogger(__name__)

Method = Literal["ridge", "adam"]
Prior = Literal["encoder", "zero"]
WEIGHTS = "adapter.safetensors"
CONFIG = "adapter.json"


@dataclass(frozen=True, kw_only=True)
class AdapterConfig:
    """How the effect approximator is fitted."""

    method: Method = "ridge"
    """Closed-form ridge (default) or Adam with a cosine schedule (the paper's recipe)."""
    prior: Prior = "encoder"
    """Ridge: shrink W towards gamma * W_enc ("encoder") or towards 0 ("zero")."""
    ridge_alphas: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
    """Ridge penalties tried; the best on the validation slice is refitted on all training vectors."""
    val_fraction: float = 0.2
    """Share of the training vectors used to choose the ridge penalty."""
    lr: float = 2e-4
    """Adam: peak learning rate (cosine decay to 0)."""
    epochs: int = 15
    """Adam: passes over the training vectors."""
    batch_size: int = 64
    """Adam: vectors per step."""
    test_fraction: float = 0.2
    """Share of the measured vectors held out for evaluation."""
    seed: int = 0
    """Seeds the split and Adam's shuffling."""

    def __post_init__(self) -> None:  # validate only
        check_choice("adapter", "method", self.method, Method)
        check_choice("adapter", "prior", self.prior, Prior)
        for name in ("lr", "epochs", "batch_size"):
            check_positive("adapter", name, getattr(self, name))
        for name in ("val_fraction", "test_fraction"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"adapter.{name} must be in (0, 1), got {getattr(self, name)}")


@dataclass(frozen=True)
class EffectApproximator:
    """`e_hat(s) = s @ W + b`."""

    W: Tensor
    """[d_model, d_sae]"""
    b: Tensor
    """[d_sae]"""

    def __call__(self, s: Tensor) -> Tensor:
        """s: [..., d_model] unit directions -> predicted effects [..., d_sae]."""
        return s.float() @ self.W + self.b

    def save(self, folder: Path, config: dict) -> None:
        """`adapter.safetensors` (W, b) and `adapter.json` (`config` + shapes), both atomic."""
        atomic_write_bytes(folder / WEIGHTS, save({"W": self.W.contiguous(), "b": self.b.contiguous()}))
        atomic_write_json(folder / CONFIG, {"d_model": self.W.shape[0], "d_sae": self.W.shape[1], **config})

    @classmethod
    def load(cls, folder: Path) -> EffectApproximator:
        read_json(folder / CONFIG)  # fails clearly when the pair is incomplete
        data = load_file(str(folder / WEIGHTS))
        return cls(data["W"], data["b"])


def split_indices(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded (keep, held_out) split of range(n), at least one in each part."""
    if n < 2:
        raise ValueError(f"need at least 2 vectors to split, got {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_out = min(max(1, round(n * fraction)), n - 1)
    return order[n_out:], order[:n_out]


def _ridge(x: Tensor, y: Tensor, alpha: float, prior: Tensor | None) -> EffectApproximator:
    """Ridge regression shrunk towards `prior` [d_model, d_sae] (None = towards 0), intercept free."""
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = (x - x_mean).double(), (y - y_mean).double()
    if prior is not None:
        yc = yc - xc @ prior.double()
    gram = xc.T @ xc + alpha * torch.eye(x.shape[1], dtype=torch.float64)
    w = torch.linalg.solve(gram, xc.T @ yc).float()
    if prior is not None:
        w = w + prior
    return EffectApproximator(w, y_mean - x_mean @ w)


def encoder_prior(x: Tensor, y: Tensor, w_enc: Tensor) -> Tensor:
    """`gamma * w_enc` with gamma the least-squares scalar between centred `x @ w_enc` and centred y.

    Args:
        x: [n, d_model]; y: [n, d_sae]; w_enc: [d_model, d_sae] the SAE encoder.

    Returns:
        [d_model, d_sae] float32.
    """
    w_enc = w_enc.detach().float().cpu()
    guess = (x - x.mean(0)) @ w_enc
    target = y - y.mean(0)
    gamma = float((guess * target).sum() / guess.pow(2).sum().clamp_min(1e-12))
    logger.info("encoder prior: gamma %.4g", gamma)
    return gamma * w_enc


def fit_ridge(
    x: Tensor, y: Tensor, cfg: AdapterConfig, *, w_enc: Tensor | None = None
) -> tuple[EffectApproximator, float]:
    """Ridge regression with the penalty chosen on a validation slice.

    Args:
        x: [n, d_model] directions; y: [n, d_sae] measured effects.
        cfg: penalties, validation share and prior.
        w_enc: [d_model, d_sae] SAE encoder, needed for `cfg.prior == "encoder"`.

    Returns:
        (approximator refitted on all of x, chosen penalty).
    """
    x, y = x.float(), y.float()
    if cfg.prior == "encoder" and w_enc is None:
        raise ValueError("adapter.prior='encoder' needs the SAE encoder (w_enc)")
    fit_idx, val_idx = split_indices(x.shape[0], cfg.val_fraction, cfg.seed + 1)

    def prior(rows: Tensor) -> Tensor | None:
        if w_enc is None or cfg.prior != "encoder":
            return None
        return encoder_prior(x[rows], y[rows], w_enc)

    def val_mse(alpha: float) -> float:
        fitted = _ridge(x[fit_idx], y[fit_idx], alpha, prior(fit_idx))
        return float((fitted(x[val_idx]) - y[val_idx]).pow(2).mean())

    errors = {alpha: val_mse(alpha) for alpha in cfg.ridge_alphas}
    best = min(errors, key=errors.__getitem__)
    logger.info("ridge validation MSE by penalty: %s -> %s", errors, best)
    return _ridge(x, y, best, prior(torch.arange(x.shape[0]))), best


def fit_adam(x: Tensor, y: Tensor, cfg: AdapterConfig) -> EffectApproximator:
    """MSE regression with Adam and a cosine learning-rate schedule (SAE-TS's recipe)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    w = torch.zeros(x.shape[1], y.shape[1], requires_grad=True)
    b = y.float().mean(0).clone().requires_grad_(True)
    steps = cfg.epochs * math.ceil(x.shape[0] / cfg.batch_size)
    opt = torch.optim.Adam([w, b], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    for _ in range(cfg.epochs):
        for idx in torch.randperm(x.shape[0], generator=gen).split(cfg.batch_size):
            loss = (x[idx].float() @ w + b - y[idx].float()).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return EffectApproximator(w.detach(), b.detach())


def fit_approximator(
    x: Tensor, y: Tensor, cfg: AdapterConfig, *, w_enc: Tensor | None = None
) -> EffectApproximator:
    """Fit with `cfg.method` (ridge, with `w_enc` for the encoder prior, or Adam)."""
    return fit_ridge(x, y, cfg, w_enc=w_enc)[0] if cfg.method == "ridge" else fit_adam(x, y, cfg)


def _scores(pred: Tensor, y: Tensor) -> dict[str, float]:
    return {
        "mse": float((pred - y).pow(2).mean()),
        "cosine": float(torch.nn.functional.cosine_similarity(pred, y, dim=1).mean()),
    }


def evaluate_predictions(
    approx: EffectApproximator,
    x: Tensor,
    y: Tensor,
    train_idx: Tensor,
    test_idx: Tensor,
    *,
    sae: SAE,
    scale: float,
) -> dict[str, dict[str, float]]:
    """Held-out MSE and mean cosine of the approximator and of the two trivial predictors.

    Returns:
        {"adapter" | "mean_effect" | "sae_encoding": {"mse", "cosine"}} on the held-out vectors.
    """
    x, y = x.float(), y.float()
    y_test = y[test_idx]
    with torch.no_grad():
        enc = sae.encode((x * scale).to(sae.dtype)).float()
    # least-squares factor so the encoding baseline is in effect units: a = <enc, y> / <enc, enc>
    factor = float((enc[train_idx] * y[train_idx]).sum() / enc[train_idx].pow(2).sum().clamp_min(1e-12))
    mean = y[train_idx].mean(0, keepdim=True).expand_as(y_test)
    return {
        "adapter": _scores(approx(x[test_idx]), y_test),
        "mean_effect": _scores(mean, y_test),
        "sae_encoding": _scores(factor * enc[test_idx], y_test),
    }

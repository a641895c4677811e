"""JumpReLU SAE: f_i = relu(h_i) * (h_i > threshold_i), trained with an L0 penalty.

The step function has no useful gradient, so training uses straight-through estimators with a
rectangle kernel of width `bandwidth` (Rajamanoharan et al. 2024): the threshold receives
`-(1/bandwidth) * 1{|h - t| < bandwidth/2}` per unit of L0 penalty and `-(t/bandwidth)` times the
same kernel from the reconstruction. Inputs get no gradient from the L0 term (SAELens' default).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from sae_interp.sae.base import SAE, SAEOutput, TrainStepInputs
from sae_interp.sae.config import SAEConfig
from sae_interp.sae.registry import register_architecture

__all__ = ["JumpReLUSAE"]


def _kernel(pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
    """Rectangle kernel K((h - t) / bandwidth) / bandwidth, [..., d_sae]."""
    return ((pre - threshold).abs() < bandwidth / 2).to(pre.dtype) / bandwidth


def _sum_to_latents(t: Tensor) -> Tensor:
    """[..., d_sae] -> [d_sae]: threshold gradients summed over all rows."""
    return t.reshape(-1, t.shape[-1]).sum(0)


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre.relu() * (pre > threshold)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        pre, threshold = ctx.saved_tensors
        grad_pre = grad * ((pre > threshold) & (pre > 0))
        # d/dt [h * H(h - t)] ~ -t * K((h - t) / bandwidth) / bandwidth
        grad_threshold = _sum_to_latents(-threshold * _kernel(pre, threshold, ctx.bandwidth) * grad)
        return grad_pre, grad_threshold, None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor, None]:
        pre, threshold = ctx.saved_tensors
        return None, _sum_to_latents(-_kernel(pre, threshold, ctx.bandwidth) * grad), None


@register_architecture("jumprelu")
class JumpReLUSAE(SAE):
    """JumpReLU SAE with a learned per-latent `threshold [d_sae]`."""

    initial_threshold: ClassVar[float] = 0.01
    """Threshold of every latent at initialisation (SAELens' default)."""
    sparsity_coefficient: ClassVar[str] = "l0_coefficient"

    def __init__(
        self, cfg: SAEConfig, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ):
        super().__init__(cfg, device=device, dtype=dtype)
        self.threshold = nn.Parameter(
            torch.full((cfg.d_sae,), self.initial_threshold, device=device, dtype=dtype)
        )

    def activate(self, pre: Tensor) -> Tensor:
        return pre.relu() * (pre > self.threshold)

    def forward(self, x: Tensor, step: TrainStepInputs | None = None) -> SAEOutput:
        if step is None:
            return super().forward(x)
        # same as the base forward, but the latents carry the straight-through threshold gradient
        pre = self.pre_acts(x)
        acts = _JumpReLU.apply(pre, self.threshold, step.bandwidth)
        recon = self._unscale(acts @ self.W_dec + self.b_dec)
        mse = (recon - x.to(self.dtype)).pow(2).sum(-1).mean()
        l0 = _Step.apply(pre, self.threshold, step.bandwidth).sum(-1).mean()
        return SAEOutput(recon.to(x.dtype), acts.to(x.dtype), mse, l0, None)

    @torch.no_grad()
    def apply_constraints(self) -> None:
        # a negative threshold would make the latent a plain ReLU with extra steps; keep it >= 0
        self.threshold.clamp_(min=0.0)

    @classmethod
    def param_shapes(cls, cfg: SAEConfig) -> dict[str, tuple[tuple[int, ...], str]]:
        return {**super().param_shapes(cfg), "threshold": ((cfg.d_sae,), "[d_sae]")}

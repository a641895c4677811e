"""TopK SAE (Gao et al. 2024): keep the k largest pre-activations of each row, then ReLU.

Training keeps decoder rows at unit norm and removes the gradient component parallel to each row
(so Adam's step does not just fight the renormalisation), and adds the AuxK loss: the k_aux largest
pre-activations among dead latents must reconstruct the main reconstruction's residual, which
gives dead latents a gradient again.

Decoding works from (values, indices) with `embedding_bag`, so training and `encode_sparse` never
multiply a dense [N, d_sae] latent matrix by W_dec.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from sae_interp.sae.base import SAE, SAEOutput, SparseLatents, TrainStepInputs
from sae_interp.sae.registry import register_architecture

__all__ = ["TopKSAE"]


@register_architecture("topk")
class TopKSAE(SAE):
    """f = scatter(relu(topk(pre, k))); x_hat = f @ W_dec + b_dec."""

    decoder_init_norm: ClassVar[float] = 1.0

    @property
    def k(self) -> int:
        assert self.cfg.k is not None  # guaranteed by SAEConfig validation
        return self.cfg.k

    def _decoder_norms(self) -> Tensor:
        return self.W_dec.norm(dim=1).clamp_min(1e-12)

    def pre_acts(self, x: Tensor) -> Tensor:
        pre = super().pre_acts(x)
        # SAELens' rescale_acts_by_decoder_norm: rank latents as if decoder rows had unit norm
        return pre * self._decoder_norms() if self.cfg.rescale_acts_by_decoder_norm else pre

    def _top(self, pre: Tensor) -> tuple[Tensor, Tensor]:
        """pre [..., d_sae] -> (values [..., k] after ReLU, indices [..., k])."""
        top = pre.topk(self.k, dim=-1, sorted=False)
        return top.values.relu(), top.indices

    def activate(self, pre: Tensor) -> Tensor:
        values, indices = self._top(pre)
        return torch.zeros_like(pre).scatter_(-1, indices, values)

    def _decode_sparse(self, indices: Tensor, values: Tensor) -> Tensor:
        """indices, values [..., j] -> sum_j values * W_dec[indices] [..., d_in], no bias (SAE dtype)."""
        if self.cfg.rescale_acts_by_decoder_norm:
            values = values / self._decoder_norms()[indices]
        flat = F.embedding_bag(
            indices.reshape(-1, indices.shape[-1]),
            self.W_dec,
            per_sample_weights=values.reshape(-1, values.shape[-1]),
            mode="sum",
        )
        return flat.reshape(*indices.shape[:-1], self.cfg.d_in)

    def decode(self, acts: Tensor) -> Tensor:
        a = acts.to(self.dtype)
        if self.cfg.rescale_acts_by_decoder_norm:
            a = a / self._decoder_norms()
        return self._unscale(a @ self.W_dec + self.b_dec).to(acts.dtype)

    def encode_sparse(self, x: Tensor) -> SparseLatents:
        """x: [N, d_in] -> nonzero latents sorted by (row, latent), no dense [N, d_sae] latents."""
        if x.ndim != 2:
            raise ValueError(f"encode_sparse expects x [N, d_in], got {tuple(x.shape)}")
        values, indices = self._top(self.pre_acts(x))
        indices, order = indices.sort(dim=-1)
        values = values.gather(-1, order)
        rows = torch.arange(x.shape[0], device=x.device).unsqueeze(1).expand_as(indices)
        keep = values > 0
        return SparseLatents(rows[keep], indices[keep], values[keep].to(x.dtype))

    def forward(self, x: Tensor, step: TrainStepInputs | None = None) -> SAEOutput:
        pre = self.pre_acts(x)
        values, indices = self._top(pre)
        recon = self._unscale(self._decode_sparse(indices, values) + self.b_dec)
        acts = torch.zeros_like(pre).scatter_(-1, indices, values)
        if step is None:
            return SAEOutput(recon.to(x.dtype), acts.to(x.dtype))
        x_in = x.to(self.dtype)
        mse = (recon - x_in).pow(2).sum(-1).mean()
        auxk = self._auxk_loss(pre, (x_in - recon).detach(), step)
        return SAEOutput(recon.to(x.dtype), acts.to(x.dtype), mse, None, auxk)

    def _auxk_loss(self, pre: Tensor, residual: Tensor, step: TrainStepInputs) -> Tensor:
        """AuxK (Gao et al.): dead latents' top-k_aux pre-activations reconstruct the residual.

        Scaled by min(n_dead / k_aux, 1) so that a few dead latents do not get the full weight.
        Exactly zero (and no gradient) when no latent is dead.
        """
        n_dead = 0 if step.dead_mask is None else int(step.dead_mask.sum())
        if n_dead == 0:
            return pre.new_zeros(())
        k_aux = step.k_aux or self.cfg.d_in // 2
        assert step.dead_mask is not None  # n_dead > 0 implies a mask
        masked = pre.masked_fill(~step.dead_mask, float("-inf"))
        top = masked.topk(min(k_aux, n_dead), dim=-1, sorted=False)
        e_hat = self._unscale(self._decode_sparse(top.indices, top.values.relu()))
        return min(n_dead / k_aux, 1.0) * (e_hat - residual).pow(2).sum(-1).mean()

    def constrain_gradients(self) -> None:
        grad = self.W_dec.grad
        if grad is not None:
            unit = self.W_dec.detach() / self._decoder_norms().detach().unsqueeze(1)
            grad -= (grad * unit).sum(dim=1, keepdim=True) * unit

    @torch.no_grad()
    def apply_constraints(self) -> None:
        self.W_dec.div_(self._decoder_norms().unsqueeze(1))

"""ReLU SAE ("standard", alias "relu"), trained with MSE + L1 weighted by decoder row norms.

The penalty `sum_i f_i * ||W_dec[i]||` follows Anthropic's April 2024 update and the SAEs of
Kissane et al.: because the norms are inside the penalty, decoder rows stay free (no unit-norm
constraint) and the SAE cannot shrink the penalty by growing its decoder.
"""

from __future__ import annotations

from torch import Tensor

from sae_interp.sae.base import SAE, TrainStepInputs
from sae_interp.sae.registry import register_architecture

__all__ = ["StandardSAE"]


@register_architecture("standard", "relu")
class StandardSAE(SAE):
    """f = relu((x - b_dec) @ W_enc + b_enc); x_hat = f @ W_dec + b_dec."""

    def activate(self, pre: Tensor) -> Tensor:
        return pre.relu()

    def _sparsity_losses(
        self, x: Tensor, pre: Tensor, acts: Tensor, recon: Tensor, step: TrainStepInputs
    ) -> tuple[Tensor | None, Tensor | None]:
        return (acts * self.W_dec.norm(dim=1)).sum(-1).mean(), None

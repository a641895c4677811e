"""What the three refusal evaluations share: the harmful/harmless residuals, r, and per-latent views.

The fidelity and sparsity evaluations need no model once the residuals are read: they take a
`RefusalActivations` (last-position residuals at one layer, REFERENCE section 2), so any SAE of the
right width can be evaluated against activations read once. `collect_refusal_activations` reads
them with the refusal tools' own functions (`encode_chat`, `last_position_resid`, `fit_directions`),
so r here is exactly the r of `refusal_latents`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from sae_interp.config import check_choice, check_positive
from sae_interp.models.loading import LoadedModel
from sae_interp.refusal.latents import decoder_cosines, mean_activation_difference
from sae_interp.sae.base import SAE

__all__ = [
    "RefusalActivations",
    "RefusalPromptConfig",
    "collect_refusal_activations",
    "decoder_cosines",
    "mean_latent_difference",
]

PromptSplit = Literal["train", "test", "all"]


@dataclass(frozen=True, kw_only=True)
class RefusalPromptConfig:
    """Which instructions define r (Kissane et al.: 64 AdvBench vs 64 Alpaca, last position)."""

    n_prompts: int = 64
    """Harmful and harmless instructions each."""
    split: PromptSplit = "train"
    """Split they come from; latent steering measures on the harmful test split, held out from r."""
    batch_size: int = 8
    """Prompts per forward."""
    system_prompt: str | None = None
    """System prompt in the chat template; None keeps the model's default."""

    def __post_init__(self) -> None:  # validate only
        check_choice("prompts", "split", self.split, PromptSplit)
        for name in ("n_prompts", "batch_size"):
            check_positive("prompts", name, getattr(self, name))


@dataclass(frozen=True)
class RefusalActivations:
    """Last-position residuals of harmful and harmless prompts at one layer (float32, CPU)."""

    layer: int
    harmful: Tensor
    """[n, d_model]"""
    harmless: Tensor
    """[m, d_model]"""

    @property
    def r(self) -> Tensor:
        """The refusal direction, mean(harmful) - mean(harmless), [d_model] (unnormalised)."""
        from sae_interp.refusal.direction import fit_directions

        return fit_directions({self.layer: self.harmful}, {self.layer: self.harmless}).at(self.layer)


def collect_refusal_activations(
    model: LoadedModel, layer: int, cfg: RefusalPromptConfig | None = None
) -> RefusalActivations:
    """Read the last-position residual at `layer` for `cfg.n_prompts` harmful and harmless prompts."""
    from sae_interp.data import load_instructions
    from sae_interp.models.prompts import encode_chat
    from sae_interp.refusal.direction import last_position_resid

    cfg = cfg or RefusalPromptConfig()
    resid = {}
    for kind in ("harmful", "harmless"):
        texts = load_instructions(kind, split=cfg.split)[: cfg.n_prompts]
        prompts = encode_chat(model, texts, cfg.system_prompt)
        resid[kind] = last_position_resid(model, prompts, [layer], batch_size=cfg.batch_size)[layer]
    return RefusalActivations(layer, resid["harmful"], resid["harmless"])


@torch.inference_mode()
def mean_latent_difference(sae: SAE, acts: RefusalActivations) -> Tensor:
    """mean f(harmful) - mean f(harmless) per latent, [d_sae] float64 (Kissane's latent ranking)."""
    return mean_activation_difference(sae, acts.harmful, acts.harmless)

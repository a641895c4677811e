"""The refusal direction: difference of mean residuals, harmful minus harmless instructions.

Following Arditi et al. (REFERENCE.md section 1): each instruction is wrapped in the model's own
chat template (or the plain template for a base model) with the generation prompt appended, and
the residual stream is read at the post-instruction positions. The Kissane variant, and our
default, uses the last position only. `r = mean(x_harmful) - mean(x_harmless)` per layer.

Only forwards are needed here (no generation), stopped after the deepest requested layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from sae_interp.models import LoadedModel, PromptBatch, read_resid

__all__ = [
    "RefusalDirections",
    "candidate_layers",
    "fit_directions",
    "last_position_resid",
    "projection_auc",
]


def candidate_layers(n_layers: int, n_candidates: int = 7) -> tuple[int, ...]:
    """Evenly spaced layers in [0.2, 0.8) * n_layers, where refusal directions are usually found.

    Arditi et al. discard layers >= 0.8 * n_layers: ablating there barely changes behaviour.
    """
    low, high = max(1, round(0.2 * n_layers)), max(2, int(0.8 * n_layers))
    if n_candidates >= high - low:
        return tuple(range(low, high))
    step = (high - 1 - low) / (n_candidates - 1)
    return tuple(sorted({low + round(i * step) for i in range(n_candidates)}))


def last_position_resid(
    model: LoadedModel, prompts: PromptBatch, layers: Sequence[int], *, batch_size: int = 8
) -> dict[int, Tensor]:
    """Residual at the last prompt position: layer -> [n, d_model] float32 (on CPU)."""
    out: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    for start in range(0, len(prompts), batch_size):
        rows = prompts.rows(start, start + batch_size)
        for batch in read_resid(
            model, layers, rows.input_ids, batch_size=batch_size, attention_mask=rows.attention_mask
        ):
            for layer, acts in batch.acts.items():
                out[layer].append(acts[:, -1].float().cpu())
    return {layer: torch.cat(chunks) for layer, chunks in out.items()}


@dataclass(frozen=True)
class RefusalDirections:
    """Difference-of-means directions at several layers (last position)."""

    layers: tuple[int, ...]
    directions: Tensor
    """[n_layers_selected, d_model] unnormalised r per layer (harmful mean - harmless mean)."""
    harmful_mean: Tensor
    """[n_layers_selected, d_model]."""
    harmless_mean: Tensor
    """[n_layers_selected, d_model]."""

    def at(self, layer: int) -> Tensor:
        """r at `layer`, [d_model]."""
        return self.directions[self.layers.index(layer)]


def fit_directions(harmful: dict[int, Tensor], harmless: dict[int, Tensor]) -> RefusalDirections:
    """r per layer from last-position residuals (`last_position_resid` of each prompt set)."""
    layers = tuple(sorted(harmful))
    harmful_mean = torch.stack([harmful[layer].mean(0) for layer in layers])
    harmless_mean = torch.stack([harmless[layer].mean(0) for layer in layers])
    return RefusalDirections(layers, harmful_mean - harmless_mean, harmful_mean, harmless_mean)


def projection_auc(positive: Tensor, negative: Tensor, direction: Tensor) -> float:
    """AUC of the projection onto `direction` separating `positive` [n, d] from `negative` [m, d].

    The Mann-Whitney statistic: the probability that a random positive projects higher than a
    random negative (ties count half). 1.0 is perfect separation, 0.5 chance.
    """
    unit = direction / direction.norm()
    pos, neg = positive.float() @ unit.float(), negative.float() @ unit.float()
    greater = (pos[:, None] > neg[None, :]).float().sum()
    ties = (pos[:, None] == neg[None, :]).float().sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))

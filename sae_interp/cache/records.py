"""What the loader hands to explainers and scorers: one `LatentRecord` per latent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from torch import Tensor

__all__ = ["Example", "ExampleKind", "LatentRecord", "LatentSummary", "SkippedLatent"]

ExampleKind = Literal["activating", "random", "neighbour"]


@dataclass(frozen=True, eq=False)
class Example:
    """A window of `example_ctx_len` tokens of one cached row, with the latent's activation per token.

    The loader gathers the windows of a record into two [n, example_ctx_len] blocks at once, and an
    Example keeps its row of them: `tokens` and `activations` are views cut on access. (Making the
    ~150 views of a record up front cost more than building the rest of the record.)
    """

    token_block: Tensor
    """int64 [n, width]: the token windows gathered with this one."""
    activation_block: Tensor
    """float32 [n, width]: their activations of the record's latent (zeros when non-activating)."""
    index: int
    """This example's row of the blocks."""
    length: int
    """Its tokens (the last window of a cached row may be shorter than the block's width)."""
    row: int
    """Row of the cache's token array."""
    start: int
    """Position of the window's first token in its row."""
    kind: ExampleKind = "activating"
    """activating; random (a window where the latent is zero); neighbour (zero for this latent,
    active for a latent with a similar decoder row)."""
    quantile: int | None = None
    """Activation quantile of an activating example, 1 = strongest; None otherwise."""
    neighbour: int | None = None
    """For kind "neighbour": the similar latent that is active in the window."""

    @property
    def tokens(self) -> Tensor:
        """int64 [length] token ids."""
        return self.token_block[self.index, : self.length]

    @property
    def activations(self) -> Tensor:
        """float32 [length] activation of the record's latent at each token."""
        return self.activation_block[self.index, : self.length]

    @property
    def max_activation(self) -> float:
        return float(self.activations.max()) if self.activations.numel() else 0.0

    def token_strings(self, tokenizer: Any) -> list[str]:
        """Each token decoded on its own (for highlighting the activating ones)."""
        return [tokenizer.decode([t]) for t in self.tokens.tolist()]

    def text(self, tokenizer: Any) -> str:
        """The window as one string."""
        return tokenizer.decode(self.tokens.tolist())


@dataclass(frozen=True)
class LatentSummary:
    """Statistics of one latent over the whole cache."""

    count: int
    """Cached nonzero activations."""
    frequency: float
    """count / cached tokens."""
    max: float
    mean: float
    """Mean over the nonzero activations."""
    hist: list[int]
    """Counts of |activation| per bin of `layout.HIST_EDGES` (log2-spaced)."""


@dataclass(frozen=True)
class LatentRecord:
    """Everything known about one latent, ready for an explainer and scorers."""

    hookpoint: str
    latent: int
    train: list[Example]
    """Examples for the explainer, strongest quantile first."""
    test: list[Example]
    """Held-out activating examples for scorers; never overlapping `train`."""
    non_activating: list[Example]
    """Windows where the latent is zero."""
    statistics: LatentSummary
    n_examples: int
    """Activating windows available in the cache."""
    neighbours: list[int] = field(default_factory=list)
    """Latents with the most similar decoder rows (when an SAE was given)."""

    def decode(self, tokenizer: Any) -> dict[str, list[list[str]]]:
        """Per-token strings of every example: {"train": [...], "test": [...], "non_activating": [...]}."""
        return {
            name: [ex.token_strings(tokenizer) for ex in getattr(self, name)]
            for name in ("train", "test", "non_activating")
        }


@dataclass(frozen=True)
class SkippedLatent:
    """A requested latent that got no record, and why."""

    hookpoint: str
    latent: int
    n_examples: int
    reason: str

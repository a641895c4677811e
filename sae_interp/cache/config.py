"""Settings of the latent cache (writing) and of the example loader (reading)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sae_interp.config import ConfigError, check_choice, check_positive

__all__ = ["ActivationDType", "CacheConfig", "LoaderConfig", "NonActivatingSource", "TrainSampler"]

ActivationDType = Literal["float16", "float32"]
TrainSampler = Literal["quantiles", "top", "random", "mix"]
NonActivatingSource = Literal["random", "neighbours"]


@dataclass(frozen=True, kw_only=True)
class CacheConfig:
    """How FeatureCache runs the model and SAEs and lays the nonzero activations out on disk."""

    batch_size: int = 8
    """Token rows per forward."""
    rows_per_part: int = 64
    """Token rows per part file: the unit of atomic writing, resuming and scale-out. Memory held
    while caching grows with rows_per_part * ctx_len * (active latents per token)."""
    n_splits: int = 1
    """Latent ranges per hookpoint (Delphi's `n_splits`): a loader reads only the ranges it needs."""
    activation_dtype: ActivationDType = "float16"
    """Stored dtype of activations; float16 halves the disk but overflows above 65504."""
    latents: tuple[int, ...] | None = None
    """Cache only these latent ids (e.g. the ones you will explain); None keeps all."""
    keep_bos: bool = False
    """Keep position 0 (BOS); it is excluded by default because its activations are outliers."""
    threshold: float = 0.0
    """Keep activations with |a| > threshold (0 keeps every nonzero)."""

    def __post_init__(self) -> None:
        check_positive("cache", "batch_size", self.batch_size)
        check_positive("cache", "rows_per_part", self.rows_per_part)
        check_positive("cache", "n_splits", self.n_splits)
        check_positive("cache", "threshold", self.threshold, allow_zero=True)
        check_choice("cache", "activation_dtype", self.activation_dtype, ActivationDType)
        if self.latents is not None and (not self.latents or min(self.latents) < 0):
            raise ConfigError(f"cache.latents must be non-empty ids >= 0 or None, got {self.latents!r}")


@dataclass(frozen=True, kw_only=True)
class LoaderConfig:
    """How activating and non-activating examples are built from a cache."""

    example_ctx_len: int = 32
    """Tokens per example; examples are the non-overlapping windows [k*len, (k+1)*len) of a row."""
    min_examples: int = 200
    """Latents with fewer activating examples are skipped and reported (Delphi's default)."""
    n_train: int = 40
    """Examples shown to the explainer."""
    n_test: int = 50
    """Held-out activating examples for scorers, disjoint from train."""
    n_quantiles: int = 10
    """Activation quantiles (by rank); quantile 1 holds the strongest examples."""
    train_sampler: TrainSampler = "quantiles"
    """quantiles: equal numbers from each quantile; top: the strongest; random: uniform; mix: half
    top, half random from the rest."""
    n_non_activating: int = 50
    """Examples in which the latent is zero everywhere."""
    non_activating_source: NonActivatingSource = "random"
    """random: windows drawn without replacement; neighbours: windows where the latents with the
    most similar decoder rows fire (needs an SAE), topped up at random."""
    n_neighbours: int = 10
    """Neighbour latents used by the "neighbours" source."""
    seed: int = 22
    """Seed of every random choice; the same seed gives the same records."""
    prefetch: int = 2
    """Records the async loader builds ahead of its consumer (bounds memory)."""

    def __post_init__(self) -> None:
        for name in ("example_ctx_len", "min_examples", "n_quantiles", "n_neighbours", "prefetch"):
            check_positive("loader", name, getattr(self, name))
        for name in ("n_train", "n_test", "n_non_activating"):
            check_positive("loader", name, getattr(self, name), allow_zero=True)
        check_choice("loader", "train_sampler", self.train_sampler, TrainSampler)
        check_choice("loader", "non_activating_source", self.non_activating_source, NonActivatingSource)

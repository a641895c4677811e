"""Latent cache: which tokens activate which SAE latents, streamed to disk, and the example loader.

- `FeatureCache` (writer.py) runs the model and SAE(s) and writes parts atomically, with resume
  and multi-process scale-out (the many-GPU recipe is in writer.py's docstring).
- `open_cache` (layout.py) reads a native cache or a Delphi one; `export_delphi` writes Delphi's.
- `FeatureDataset` / `FeatureLoader` (loader.py) build one `LatentRecord` per latent.
CLI: `python -m sae_interp.cache --help`.
"""

from sae_interp.cache.config import CacheConfig, LoaderConfig
from sae_interp.cache.delphi import export_delphi
from sae_interp.cache.layout import HIST_EDGES, CacheError, CacheIndex, LatentStatistics, open_cache
from sae_interp.cache.loader import FeatureDataset, FeatureLoader, latents_from_scores
from sae_interp.cache.records import Example, LatentRecord, LatentSummary, SkippedLatent
from sae_interp.cache.writer import ActivationSource, CacheResult, FeatureCache, ModelSource, hookpoint_layer

__all__ = [
    "HIST_EDGES",
    "ActivationSource",
    "CacheConfig",
    "CacheError",
    "CacheIndex",
    "CacheResult",
    "Example",
    "FeatureCache",
    "FeatureDataset",
    "FeatureLoader",
    "LatentRecord",
    "LatentStatistics",
    "LatentSummary",
    "LoaderConfig",
    "ModelSource",
    "SkippedLatent",
    "export_delphi",
    "hookpoint_layer",
    "latents_from_scores",
    "open_cache",
]

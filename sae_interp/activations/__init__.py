"""Residual activations for SAE training and the latent cache: streamed, shuffled, stored once on disk.

`build_store` runs the early-stopped forward once and writes safetensors parts plus a manifest;
`ActivationStore` reads them back (row order for the cache, shuffled batches for training);
`ShuffleBuffer` and `iter_model_chunks` train straight from the model without a store.
"""

from sae_interp.activations.build import build_store
from sae_interp.activations.shuffle import ShuffleBuffer
from sae_interp.activations.store import (
    MANIFEST_FILENAME,
    STORE_FORMAT_VERSION,
    TOKENS_FILENAME,
    ActivationStore,
    StoreConfig,
    StoreMismatchError,
    StorePart,
    iter_model_chunks,
)

__all__ = [
    "MANIFEST_FILENAME",
    "STORE_FORMAT_VERSION",
    "TOKENS_FILENAME",
    "ActivationStore",
    "ShuffleBuffer",
    "StoreConfig",
    "StoreMismatchError",
    "StorePart",
    "build_store",
    "iter_model_chunks",
]

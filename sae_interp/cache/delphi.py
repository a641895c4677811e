"""Export a native cache in Delphi's layout, for users who run Delphi's own LatentDataset on it.

Delphi's layout: `<out>/latents/<hookpoint>/<start>_<end>.safetensors` with an *inclusive* end,
each file holding `locations` [n, 3] (row, position, latent - start) as uint16 when every value
fits (uint32 otherwise), `activations` float16 [n] and a full copy of `tokens` int64
[n_rows, ctx_len]; plus `config.json` in the hookpoint folder. Reading Delphi folders needs no
export: `open_cache` / `FeatureDataset` read them directly.

Boundary decision: our hookpoint names are kept as folder names. Delphi names hookpoints by module
and hooks module *outputs*; ours are residual layers entering a module, so `model.layers.6` in a
Delphi cache is our `blocks.7.hook_resid_pre`. The export does not rename.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors.torch import save as save_tensors

from sae_interp._io import atomic_write_bytes, atomic_write_json
from sae_interp.cache.layout import CacheError, open_cache

__all__ = ["export_delphi"]

logger = logging.getLogger(__name__)


def export_delphi(cache: str | Path, out_dir: str | Path, *, batch_size: int = 8) -> list[Path]:
    """Write a finished native cache in Delphi's layout.

    Args:
        cache: a native cache folder.
        out_dir: where `latents/<hookpoint>/...` is written.
        batch_size: recorded in Delphi's config.json (informational).

    Returns:
        The split files written.

    Raises:
        CacheError: the cache is not native or not complete; an activation outside float16.
    """
    index = open_cache(cache)
    if index.kind != "native":
        raise CacheError(f"{cache} is already a Delphi cache")
    if len(index.rows) != index.n_rows:
        raise CacheError(
            f"{cache}: only {len(index.rows)} of {index.n_rows} rows are cached; finish it first"
        )
    tokens = index.tokens()
    written = []
    for hp, info in index.hookpoints.items():
        folder = Path(out_dir) / "latents" / hp
        for start, end in info.splits:
            locations, activations = index.read_split(hp, (start, end))
            if activations.abs().max() > 65504 if len(activations) else False:
                raise CacheError(
                    f"{cache}: {hp} {start}_{end} has activations outside float16, which Delphi stores"
                )
            dtype = torch.uint16 if len(locations) == 0 or int(locations.max()) < 2**16 else torch.uint32
            tensors = {
                "locations": locations.to(dtype).contiguous(),
                "activations": activations.to(torch.float16).contiguous(),
                "tokens": tokens,
            }
            path = folder / f"{start}_{end - 1}.safetensors"
            atomic_write_bytes(path, save_tensors(tensors))
            written.append(path)
        atomic_write_json(
            folder / "config.json", _delphi_config(index.manifest, len(info.splits), batch_size)
        )
    logger.info("exported %d Delphi split files to %s", len(written), out_dir)
    return written


def _delphi_config(manifest: dict, n_splits: int, batch_size: int) -> dict:
    return {
        "dataset_repo": manifest.get("data_source", ""),
        "dataset_split": "",
        "dataset_name": "",
        "dataset_column": "text",
        "batch_size": batch_size,
        "cache_ctx_len": manifest["ctx_len"],
        "n_tokens": manifest["n_rows"] * manifest["ctx_len"],
        "n_splits": n_splits,
        "model_name": manifest["model"],
    }

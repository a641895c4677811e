"""Write an activation store once, resume it after a crash, and reuse it when it already matches.

See `sae_interp.activations.store` for the folder layout and the guarantees.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save
from torch import Tensor
from tqdm import tqdm

from sae_interp._io import TMP_PREFIX, atomic_write_bytes, atomic_write_json
from sae_interp.activations.store import (
    _IDENTITY_KEYS,
    MANIFEST_FILENAME,
    PARTS_DIRNAME,
    STORE_FORMAT_VERSION,
    TOKENS_FILENAME,
    ActivationStore,
    StoreConfig,
    StoreMismatchError,
    _tensor_key,
    _tokens_sha256,
)
from sae_interp.models.loading import LoadedModel
from sae_interp.models.resid import read_resid

__all__ = ["build_store"]

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _new_manifest(
    model: LoadedModel, tokens: Tensor, lengths: Tensor, cfg: StoreConfig, source: str
) -> dict[str, Any]:
    import transformers

    layers = sorted(set(cfg.layers))
    return {
        "format_version": STORE_FORMAT_VERSION,
        "complete": False,
        "model": model.spec.name,
        "provenance": dict(model.spec.provenance),
        "transformers_version": transformers.__version__,
        "model_dtype": model.spec.dtype,
        "layers": layers,
        "hook_names": {str(layer): model.spec.hook_name(layer) for layer in layers},
        "module_paths": {str(layer): model.spec.layer_path(layer) for layer in layers},
        "d_model": model.spec.d_model,
        "n_rows": tokens.shape[0],
        "ctx_len": tokens.shape[1],
        "source": source,
        "tokens_sha256": _tokens_sha256(tokens, lengths),
        "dtype": cfg.dtype,
        "first_position": 0 if cfg.keep_bos else 1,
        "positions_note": "stored index i is token position i + first_position; position 0 is BOS",
        "rows_per_part": cfg.rows_per_part,
        "parts": [],
    }


def _check_identity(existing: dict[str, Any], wanted: dict[str, Any], path: Path) -> None:
    diffs = [
        f"{key}: stored {existing.get(key)!r}, requested {wanted[key]!r}"
        for key in _IDENTITY_KEYS
        if existing.get(key) != wanted[key]
    ]
    if diffs:
        raise StoreMismatchError(
            f"the activation store at {path} was built from other inputs ({'; '.join(diffs)}); "
            "use another folder, or delete this one to rebuild it"
        )


def _write_part(
    model: LoadedModel, tokens: Tensor, rows: tuple[int, int], manifest: dict[str, Any], cfg: StoreConfig
) -> bytes:
    """Read rows [start, end) at every stored layer and serialise them as one safetensors part."""
    start, end = rows
    first, dtype = manifest["first_position"], _DTYPES[manifest["dtype"]]
    chunks: dict[int, list[Tensor]] = {layer: [] for layer in manifest["layers"]}
    for batch in read_resid(model, manifest["layers"], tokens[start:end], batch_size=cfg.batch_size):
        for layer, acts in batch.acts.items():
            chunks[layer].append(acts[:, first:].to("cpu", dtype))
    tensors = {_tensor_key(layer): torch.cat(parts).contiguous() for layer, parts in chunks.items()}
    metadata = {
        "format_version": str(STORE_FORMAT_VERSION),
        "model": manifest["model"],
        "row_start": str(start),
        "row_end": str(end),
        "first_position": str(first),
    }
    return save(tensors, metadata=metadata)


def build_store(
    model: LoadedModel,
    tokens: Tensor,
    path: str | os.PathLike[str],
    cfg: StoreConfig,
    *,
    lengths: Tensor | None = None,
    source: str = "",
    progress: bool = True,
) -> ActivationStore:
    """Write (or resume, or reuse) the activation store for `tokens` at `path`.

    Args:
        model: from `load_model`.
        tokens: [n_rows, ctx_len] int64 token rows (e.g. `tokenize_rows(...).tokens`).
        path: the store folder.
        cfg: layers, kept positions, dtype, part size, forward batch size.
        lengths: [n_rows] real tokens per row ("pad" mode); default all positions are real.
        source: the data set name or path, recorded in the manifest.
        progress: show a tqdm bar over parts (also off when stderr is not a terminal).

    Returns:
        The finished store.

    Raises:
        StoreMismatchError: `path` holds a store of another model, layers, tokens, dtype or positions.
    """
    folder = Path(path)
    lengths = lengths if lengths is not None else torch.full((tokens.shape[0],), tokens.shape[1])
    manifest = _new_manifest(model, tokens, lengths, cfg, source)
    if (folder / MANIFEST_FILENAME).is_file():
        existing = ActivationStore(folder).manifest
        _check_identity(existing, manifest, folder)
        if existing["complete"]:
            logger.info("reusing the finished activation store at %s", folder)
            return ActivationStore(folder)
        manifest = existing  # resume with its own part size
        for stale in (folder / PARTS_DIRNAME).glob(f"{TMP_PREFIX}*"):
            stale.unlink(missing_ok=True)  # the part a killed writer had in flight
        logger.info("resuming the activation store at %s after %d parts", folder, len(manifest["parts"]))
    else:
        (folder / PARTS_DIRNAME).mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(
            folder / TOKENS_FILENAME,
            save(
                {
                    "tokens": tokens.to(torch.int64).contiguous(),
                    "lengths": lengths.to(torch.int64).contiguous(),
                }
            ),
        )
        atomic_write_json(folder / MANIFEST_FILENAME, manifest)
    _write_missing_parts(model, tokens, folder, manifest, cfg, progress)
    manifest["complete"] = True
    atomic_write_json(folder / MANIFEST_FILENAME, manifest)
    return ActivationStore(folder)


def _write_missing_parts(
    model: LoadedModel,
    tokens: Tensor,
    folder: Path,
    manifest: dict[str, Any],
    cfg: StoreConfig,
    progress: bool,
) -> None:
    step, n_rows = manifest["rows_per_part"], manifest["n_rows"]
    starts = range(0, n_rows, step)
    done = len(manifest["parts"])
    with tqdm(
        total=len(starts),
        initial=done,
        desc="activation store",
        unit="part",
        disable=None if progress else True,
    ) as bar:
        for index in range(done, len(starts)):
            rows = (starts[index], min(n_rows, starts[index] + step))
            name = f"{PARTS_DIRNAME}/part-{index:05d}.safetensors"
            # A part left by a killed run but not listed in the manifest is simply rewritten.
            atomic_write_bytes(folder / name, _write_part(model, tokens, rows, manifest, cfg))
            manifest["parts"].append({"file": name, "rows": list(rows)})
            atomic_write_json(folder / MANIFEST_FILENAME, manifest)
            bar.update()

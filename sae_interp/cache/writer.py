"""FeatureCache: run the model and SAE(s) over token rows and stream the nonzero latents to disk.

Boundary decisions:
- Where activations come from is pluggable. FeatureCache consumes an `ActivationSource`, i.e.
  batches `(row_start, {hookpoint: acts [B, T, d]})` for a row range; `ModelSource` (the model
  stopped after the last hooked layer, via `models.read_resid`) is one implementation, and a
  source reading stored activations (`sae_interp.activations`) can be another.
- The unit of work is a *part*: `rows_per_part` consecutive token rows. Part `i` always covers
  rows `[i * rows_per_part, ...)`, whichever process writes it, so a resumed run, a 1-process run
  and an N-process run produce byte-identical part files. Memory is bounded by one part.
- Scale-out: process `rank` of `world_size` writes the parts with `i % world_size == rank` and
  lists them in its own `manifest.rank-R.json`; readers merge all manifests, so nothing is copied.
  The process that sees the cache complete writes the merged `manifest.json` and the statistics.

Many-GPU recipe (e.g. 100M tokens on 8 GPUs): tokenise once (`python -m sae_interp.data`), then

    torchrun --nproc-per-node 8 -m sae_interp.cache run --model <name> --sae <folder> \\
        --data <source> --n-tokens 100_000_000 --ctx-len 256 --batch-size 256 --device cuda \\
        --rows-per-part 4096 --n-splits 16 --out <cache>

Each process picks its GPU from LOCAL_RANK and its parts from RANK/WORLD_SIZE; a killed process
is restarted with the same command and continues at its next unfinished part. At the GPU limits in
REFERENCE section 8 (~0.5-0.9M tokens/s per H100 with a 16-64k-latent TopK SAE) this is a few
minutes of compute; size `rows_per_part` so that one part's nonzeros fit in host memory
(about rows * ctx_len * k * 28 bytes while encoding: ~0.9 GB for 4096 rows x 256 tokens x k=32).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors import safe_open
from safetensors.torch import save as save_tensors
from torch import Tensor
from tqdm.auto import tqdm

from sae_interp._io import atomic_write_bytes, atomic_write_json
from sae_interp.cache.config import CacheConfig
from sae_interp.cache.layout import (
    FORMAT_VERSION,
    HIST_EDGES,
    MANIFEST,
    STATISTICS,
    TOKENS,
    CacheError,
    latent_statistics,
    manifest_files,
    merge_manifests,
    part_path,
    split_ranges,
)
from sae_interp.models.loading import LoadedModel
from sae_interp.models.resid import read_resid
from sae_interp.sae.base import SAE

__all__ = ["ActivationSource", "CacheResult", "FeatureCache", "ModelSource", "hookpoint_layer"]

logger = logging.getLogger(__name__)

_FLOAT16_MAX = 65504.0
_DTYPES = {"float16": torch.float16, "float32": torch.float32}


class ActivationSource(Protocol):
    """Where FeatureCache gets residual activations from."""

    def read(self, start: int, stop: int) -> Iterator[tuple[int, dict[str, Tensor]]]:
        """Batches `(row_start, {hookpoint: acts [B, T, d]})` covering token rows [start, stop) in order."""
        ...


def hookpoint_layer(hookpoint: str, sae: SAE, model: LoadedModel) -> int:
    """The residual layer an SAE reads: its metadata.layer, else parsed from the hookpoint name.

    Raises:
        ValueError: neither says which layer.
    """
    if sae.cfg.metadata.layer is not None:
        return sae.cfg.metadata.layer
    for pattern in (r"blocks\.(\d+)\.hook_resid_pre", re.escape(model.spec.layers_path) + r"\.(\d+)"):
        if m := re.fullmatch(pattern, hookpoint):
            return int(m[1])
    raise ValueError(
        f"hookpoint {hookpoint!r}: cannot tell its layer; name it 'blocks.L.hook_resid_pre' or "
        f"'{model.spec.layers_path}.L', or set the SAE's metadata.layer"
    )


class ModelSource:
    """Runs the model over token rows, stopped after the last hooked layer."""

    def __init__(self, model: LoadedModel, layers: Mapping[str, int], tokens: Tensor, *, batch_size: int):
        self.model, self.layers, self.tokens, self.batch_size = model, dict(layers), tokens, batch_size

    def read(self, start: int, stop: int) -> Iterator[tuple[int, dict[str, Tensor]]]:
        wanted = sorted(set(self.layers.values()))
        for batch in read_resid(self.model, wanted, self.tokens[start:stop], batch_size=self.batch_size):
            yield start + batch.start, {hp: batch.acts[layer] for hp, layer in self.layers.items()}


@dataclass(frozen=True)
class CacheResult:
    """What one `FeatureCache.run` call did."""

    path: Path
    parts_written: int
    tokens_written: int
    seconds: float
    complete: bool
    """Every part of the cache (all processes) is finished."""


class FeatureCache:
    """Cache the nonzero latents of one or more SAEs over token rows, streaming parts to disk.

    Args:
        model: the loaded model (its name and provenance go into the manifest; it is run unless
            `run` gets a `source`).
        saes: hookpoint name -> SAE. Hookpoints name the residual layer the SAE reads (see
            `hookpoint_layer`); all of them are read in one forward.
        cfg: cache settings.

    Example:
        >>> FeatureCache(model, {"blocks.6.hook_resid_pre": sae}).run(rows.tokens, "cache/run1")
    """

    def __init__(self, model: LoadedModel, saes: Mapping[str, SAE], cfg: CacheConfig | None = None):
        if not saes:
            raise ValueError("saes is empty: give at least one {hookpoint: SAE}")
        self.model, self.saes, self.cfg = model, dict(saes), cfg or CacheConfig()
        self.layers = {hp: hookpoint_layer(hp, sae, model) for hp, sae in self.saes.items()}
        self.splits = {hp: split_ranges(s.cfg.d_sae, self.cfg.n_splits) for hp, s in self.saes.items()}
        self.keep = {hp: self._latent_mask(s.cfg.d_sae, hp) for hp, s in self.saes.items()}

    def _latent_mask(self, d_sae: int, hookpoint: str) -> Tensor | None:
        if self.cfg.latents is None:
            return None
        if max(self.cfg.latents) >= d_sae:
            raise ValueError(
                f"cache.latents has ids >= d_sae={d_sae} of {hookpoint}: {max(self.cfg.latents)}"
            )
        mask = torch.zeros(d_sae, dtype=torch.bool)
        mask[list(self.cfg.latents)] = True
        return mask

    def run(
        self,
        tokens: Tensor,
        path: str | os.PathLike[str],
        *,
        data_source: str = "",
        source: ActivationSource | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> CacheResult:
        """Cache `tokens` into folder `path`, resuming whatever is already there.

        Args:
            tokens: [n_rows, ctx_len] token ids (the same on every process).
            path: cache folder (created if needed).
            data_source: name of the data the rows came from (recorded in the manifest).
            source: activations to encode; default runs the model (`ModelSource`).
            rank, world_size: this process's share of the parts; default from torch.distributed
                when initialised, else the RANK/WORLD_SIZE environment variables, else 0/1.

        Returns:
            A CacheResult; re-running a finished cache writes nothing.

        Raises:
            CacheError: the folder holds a cache made with other settings, model or tokens.
            ValueError: an activation does not fit float16 (use activation_dtype="float32").
        """
        if tokens.ndim != 2 or tokens.dtype.is_floating_point:
            raise ValueError(
                f"tokens must be integer [n_rows, ctx_len], got {tokens.dtype} {list(tokens.shape)}"
            )
        root = Path(path)
        rank, world_size = _rank_and_world(rank, world_size)
        header = self._header(tokens, data_source)
        done = self._resume(root, header)
        n_parts = -(-tokens.shape[0] // self.cfg.rows_per_part)
        if len(done) == n_parts and all((root / "latents" / hp / STATISTICS).is_file() for hp in self.saes):
            logger.info("%s is complete (%d parts); nothing to do", root, n_parts)
            return CacheResult(root, 0, 0, 0.0, True)
        if not (root / TOKENS).is_file():
            atomic_write_bytes(root / TOKENS, save_tensors({"tokens": tokens.long().contiguous()}))
        todo = [i for i in range(n_parts) if i % world_size == rank and i not in done]
        source = source or ModelSource(self.model, self.layers, tokens, batch_size=self.cfg.batch_size)
        own = root / (MANIFEST if world_size == 1 else f"manifest.rank-{rank}.json")
        t0, written = time.perf_counter(), self._write_parts(root, own, header, done, todo, tokens, source)
        complete = self._finish(root, n_parts)
        return CacheResult(root, len(todo), written, time.perf_counter() - t0, complete)

    def _header(self, tokens: Tensor, data_source: str) -> dict[str, Any]:
        spec = self.model.spec
        return {
            "format_version": FORMAT_VERSION,
            "model": spec.name,
            "provenance": dict(spec.provenance),
            "data_source": data_source,
            "ctx_len": tokens.shape[1],
            "n_rows": tokens.shape[0],
            "tokens_sha256": hashlib.sha256(tokens.long().contiguous().numpy().tobytes()).hexdigest(),
            "rows_per_part": self.cfg.rows_per_part,
            "keep_bos": self.cfg.keep_bos,
            "activation_dtype": self.cfg.activation_dtype,
            "threshold": self.cfg.threshold,
            "latents": list(self.cfg.latents) if self.cfg.latents is not None else None,
            "hookpoints": {hp: self._sae_summary(hp) for hp in sorted(self.saes)},
        }

    def _sae_summary(self, hookpoint: str) -> dict[str, Any]:
        sae = self.saes[hookpoint]
        weights_sha = hashlib.sha256(sae.W_enc.detach().float().cpu().numpy().tobytes()).hexdigest()
        return {
            "d_sae": sae.cfg.d_sae,
            "layer": self.layers[hookpoint],
            "splits": [list(s) for s in self.splits[hookpoint]],
            "sae": {
                "architecture": sae.cfg.architecture,
                "d_in": sae.cfg.d_in,
                "k": sae.cfg.k,
                "metadata": sae.cfg.metadata.to_dict(),
                "W_enc_sha256": weights_sha,
            },
        }

    def _resume(self, root: Path, header: dict[str, Any]) -> dict[int, dict[str, Any]]:
        paths = manifest_files(root)
        if not paths:
            return {}
        existing = merge_manifests(paths)
        parts = existing.pop("parts")
        if existing != header:
            diff = sorted(k for k in existing.keys() | header.keys() if existing.get(k) != header.get(k))
            raise CacheError(
                f"{root} holds a cache made with other settings ({', '.join(diff)} differ); "
                "use a new folder or delete this one"
            )
        logger.info("resuming %s: %d parts already done", root, len(parts))
        return {p["part"]: p for p in parts}

    def _write_parts(
        self,
        root: Path,
        own: Path,
        header: dict[str, Any],
        done: dict[int, dict[str, Any]],
        todo: list[int],
        tokens: Tensor,
        source: ActivationSource,
    ) -> int:
        per_part = self.cfg.rows_per_part
        n_rows = tokens.shape[0]
        total = sum(min(per_part, n_rows - i * per_part) for i in todo) * tokens.shape[1]
        written = 0
        with tqdm(total=total, desc="caching latents", unit="tok", unit_scale=True, disable=None) as bar:
            for i in todo:
                start, stop = i * per_part, min((i + 1) * per_part, n_rows)
                counts = self._write_part(root, i, self._encode_rows(source, start, stop))
                done[i] = {"part": i, "rows": [start, stop], "n_nonzero": counts}
                self._write_manifest(own, header, done)
                written += (stop - start) * tokens.shape[1]
                bar.update((stop - start) * tokens.shape[1])
        return written

    @torch.inference_mode()
    def _encode_rows(
        self, source: ActivationSource, start: int, stop: int
    ) -> dict[str, tuple[Tensor, Tensor]]:
        """Nonzero latents of rows [start, stop): hookpoint -> (locations int64 [n, 3], values [n])."""
        chunks: dict[str, list[tuple[Tensor, Tensor]]] = {hp: [] for hp in self.saes}
        for row_start, acts in source.read(start, stop):
            for hp, sae in self.saes.items():
                chunks[hp].append(self._encode_batch(hp, sae, acts[hp], row_start))
        return {
            hp: (torch.cat([c[0] for c in parts]), torch.cat([c[1] for c in parts]))
            for hp, parts in chunks.items()
        }

    def _encode_batch(self, hookpoint: str, sae: SAE, acts: Tensor, row_start: int) -> tuple[Tensor, Tensor]:
        first = 0 if self.cfg.keep_bos else 1
        acts = acts[:, first:]
        n_pos = acts.shape[1]
        sparse = sae.encode_sparse(acts.reshape(-1, acts.shape[-1]))
        values = sparse.values.float().cpu()
        keep = values.abs() > self.cfg.threshold
        latents = sparse.latents.cpu()
        if (mask := self.keep[hookpoint]) is not None:
            keep &= mask[latents]
        flat = sparse.rows.cpu()[keep]
        locations = torch.stack([flat // n_pos + row_start, flat % n_pos + first, latents[keep]], dim=1)
        return locations, values[keep]

    def _write_part(self, root: Path, part: int, encoded: dict[str, tuple[Tensor, Tensor]]) -> dict[str, int]:
        counts = {}
        for hp, (locations, values) in encoded.items():
            for start, end in self.splits[hp]:
                inside = (locations[:, 2] >= start) & (locations[:, 2] < end)
                loc, val = locations[inside].clone(), values[inside]
                loc[:, 2] -= start
                tensors = self._part_tensors(hp, loc, val, (start, end))
                meta = {
                    "format_version": str(FORMAT_VERSION),
                    "model": self.model.spec.name,
                    "hookpoint": hp,
                    "latents": f"{start}_{end}",
                    "part": str(part),
                }
                atomic_write_bytes(part_path(root, hp, (start, end), part), save_tensors(tensors, meta))
            counts[hp] = int(locations.shape[0])
        return counts

    def _part_tensors(
        self, hookpoint: str, loc: Tensor, val: Tensor, split: tuple[int, int]
    ) -> dict[str, Tensor]:
        if self.cfg.activation_dtype == "float16" and (over := val.abs() > _FLOAT16_MAX).any():
            first = int(over.nonzero()[0, 0])
            latent, value = split[0] + int(loc[first, 2]), val[first].item()
            raise ValueError(
                f"{hookpoint}: latent {latent} has activation {value:.6g}, "
                f'outside the float16 range (+-{_FLOAT16_MAX:g}); pass activation_dtype="float32"'
            )
        stored = val.to(_DTYPES[self.cfg.activation_dtype]).contiguous()
        # statistics of the stored values, so that they agree with what a reader loads
        count, total, top, hist = latent_statistics(loc[:, 2], stored.float(), split[1] - split[0])
        return {
            "locations": loc.to(torch.int32).contiguous(),
            "activations": stored,
            "stat_count": count,
            "stat_total": total,
            "stat_max": top,
            "stat_hist": hist,
        }

    def _write_manifest(self, own: Path, header: dict[str, Any], done: dict[int, dict[str, Any]]) -> None:
        parts = [done[i] for i in sorted(done)]
        n_rows = sum(p["rows"][1] - p["rows"][0] for p in parts)
        atomic_write_json(
            own,
            {**header, "n_rows_done": n_rows, "n_tokens_done": n_rows * header["ctx_len"], "parts": parts},
        )

    def _finish(self, root: Path, n_parts: int) -> bool:
        """When every part of every process is done: write the merged manifest and the statistics."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()
        merged = merge_manifests(manifest_files(root))
        if len(merged["parts"]) < n_parts:
            logger.info(
                "%s: %d of %d parts done (other processes still running)", root, len(merged["parts"]), n_parts
            )
            return False
        n_rows = sum(p["rows"][1] - p["rows"][0] for p in merged["parts"])
        merged.update(n_rows_done=n_rows, n_tokens_done=n_rows * merged["ctx_len"])
        for hp in self.saes:
            self._write_statistics(root, hp, merged)
        atomic_write_json(root / MANIFEST, merged)
        return True

    def _write_statistics(self, root: Path, hookpoint: str, manifest: dict[str, Any]) -> None:
        """Sum the statistics stored in every part into latents/<hookpoint>/statistics.safetensors."""
        d_sae = self.saes[hookpoint].cfg.d_sae
        count, total = torch.zeros(d_sae, dtype=torch.int64), torch.zeros(d_sae, dtype=torch.float64)
        top, hist = torch.zeros(d_sae), torch.zeros(d_sae, len(HIST_EDGES) + 1, dtype=torch.int64)
        for start, end in self.splits[hookpoint]:
            for p in manifest["parts"]:
                part = _read_stats(part_path(root, hookpoint, (start, end), p["part"]))
                count[start:end] += part["stat_count"]
                total[start:end] += part["stat_total"]
                top[start:end] = torch.maximum(top[start:end], part["stat_max"])
                hist[start:end] += part["stat_hist"]
        per_row = manifest["ctx_len"] - (0 if self.cfg.keep_bos else 1)
        meta = {"n_tokens": str(manifest["n_rows_done"] * per_row), "hookpoint": hookpoint}
        stats = {"count": count, "total": total, "max": top, "hist": hist}
        atomic_write_bytes(root / "latents" / hookpoint / STATISTICS, save_tensors(stats, meta))


def _read_stats(path: Path) -> dict[str, Tensor]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in ("stat_count", "stat_total", "stat_max", "stat_hist")}


def _rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    dist = torch.distributed
    if rank is None and world_size is None and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    rank = int(os.environ.get("RANK", 0)) if rank is None else rank
    world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise ValueError(f"rank={rank} must be in 0..world_size-1 (world_size={world_size})")
    return rank, world_size

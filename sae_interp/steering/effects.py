"""Feature effects of steering vectors, collected in resumable shards.

The effect of a unit steering direction s (added at scale c to the residual stream at a layer) is
`mean SAE latents(text generated with c*s) - mean SAE latents(text generated without steering)`,
both encoded by the unsteered model over the generated tokens only (`steer.latent_means`).

On disk (`EffectStore`), one folder per (model, SAE, layer, prompts, generation budget, scale):

    manifest.json                       schema_version, key, scale, baseline, shards per source
    baseline.safetensors                `latents` [d_sae]: mean latents of unsteered generations
    <source>/shard-<start>-<end>.safetensors   `directions` [n, d_model], `effects` [n, d_sae]

Each shard is written atomically and then named in the manifest (also rewritten atomically), so a
killed collection loses at most the shard in progress, and a later run with more vectors only
collects the missing index ranges. Directions of a source are a deterministic function of their
index (`direction_bank`), so extending a collection never changes the vectors already measured.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import Tensor
from tqdm import tqdm

from sae_interp._io import atomic_write_bytes, atomic_write_json, read_json
from sae_interp.models import LoadedModel, PromptBatch
from sae_interp.sae import SAE
from sae_interp.steering.steer import generate_steered, latent_means

__all__ = ["EffectStore", "EffectsConfig", "collect_effects", "direction_bank", "measure_effects"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
BASELINE = "baseline.safetensors"
BASELINE_SEED_OFFSET = 1_000_000_007
"""Sampling seed of the unsteered generations, away from every shard's seed + start."""


@dataclass(frozen=True, kw_only=True)
class EffectsConfig:
    """How each steering direction is measured."""

    n_samples: int = 4
    """Sampled continuations per prompt and vector."""
    max_new_tokens: int = 16
    """Tokens per continuation."""
    temperature: float = 1.0
    """Sampling temperature (sampling, so that several samples see different text)."""
    vectors_per_batch: int = 4
    """Steering vectors generated together (rows per batch = this x prompts x samples)."""
    baseline_repeats: int = 4
    """Unsteered generations are sampled this many times more than one vector's, to cut their noise."""
    shard_size: int = 16
    """Vectors per shard file (a killed run loses at most one shard)."""
    encode_batch_size: int = 16
    """Rows per forward when re-encoding the continuations."""
    seed: int = 0
    """Sampling seed; shard i uses seed + its start index, so results do not depend on resumption."""

    def key(self) -> dict[str, Any]:
        """The fields that change a measured effect (batching and sharding do not)."""
        return {
            "n_samples": self.n_samples,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "baseline_repeats": self.baseline_repeats,
            "seed": self.seed,
        }


def direction_bank(source: str, sae: SAE, start: int, stop: int, *, seed: int = 0) -> Tensor:
    """Unit directions start..stop-1 of a named source, each a fixed function of its index.

    Args:
        source: "decoder" (SAE decoder rows in a seeded random order of latents) or "random"
            (isotropic Gaussian directions).
        sae: the SAE whose decoder rows and width are used.

    Returns:
        [stop - start, d_in] float32, unit norm.
    """
    d_in = sae.cfg.d_in
    if source == "decoder":
        order = torch.randperm(sae.cfg.d_sae, generator=torch.Generator().manual_seed(seed))
        rows = sae.W_dec.detach().float().cpu()[order[start:stop]]
    elif source == "random":
        rows = (
            torch.stack(
                [
                    torch.randn(d_in, generator=torch.Generator().manual_seed(seed * 1_000_003 + i))
                    for i in range(start, stop)
                ]
            )
            if stop > start
            else torch.empty(0, d_in)
        )
    else:
        raise ValueError(
            f"direction source {source!r}; expected 'decoder' or 'random' (or pass user vectors)"
        )
    return rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)


def measure_effects(
    model: LoadedModel,
    sae: SAE,
    layer: int,
    prompts: PromptBatch,
    vectors: Tensor,
    cfg: EffectsConfig,
    *,
    seed: int,
    n_samples: int | None = None,
) -> Tensor:
    """Mean SAE latents of each vector's steered continuations (vectors already scaled).

    Returns:
        [n_vectors, d_sae]: per vector, the mean over its prompts x samples rows.
    """
    n_samples = n_samples or cfg.n_samples
    gens = generate_steered(
        model,
        prompts,
        vectors,
        layer,
        n_samples=n_samples,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.vectors_per_batch * len(prompts) * cfg.n_samples,
        temperature=cfg.temperature,
        seed=seed,
    )
    means = latent_means(model, sae, layer, gens, batch_size=cfg.encode_batch_size)
    return means.view(vectors.shape[0], len(prompts) * n_samples, -1).mean(1)


class EffectStore:
    """A folder of effect shards with a manifest (see the module docstring for the layout)."""

    def __init__(self, root: Path, key: dict[str, Any]):
        """Open (or start) the store at `root`; an existing manifest must carry the same `key`."""
        self.root = Path(root)
        self.key = key
        path = self.root / MANIFEST
        if path.exists():
            self.manifest = read_json(path)
            if self.manifest["key"] != key:
                raise ValueError(
                    f"{path} was collected with a different setup ({self.manifest['key']} != {key}); "
                    "use another folder or delete it"
                )
        else:
            self.manifest = {
                "schema_version": SCHEMA_VERSION,
                "key": key,
                "scale": None,
                "shards": {},
                "timings": [],
            }

    @staticmethod
    def digest(key: dict[str, Any]) -> str:
        """A short stable name for `key`, for the store's folder."""
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]

    def _save_manifest(self) -> None:
        atomic_write_json(self.root / MANIFEST, self.manifest)

    @property
    def scale(self) -> float | None:
        """The calibrated steering scale the effects were measured at (None before calibration)."""
        return self.manifest["scale"]

    def set_scale(self, scale: float) -> None:
        if self.manifest["shards"]:
            raise ValueError(f"{self.root}: the scale is fixed once shards exist")
        self.manifest["scale"] = float(scale)
        self._save_manifest()

    def baseline(self) -> Tensor | None:
        """[d_sae] mean latents of unsteered generations, once measured."""
        path = self.root / BASELINE
        return load_file(str(path))["latents"] if path.exists() else None

    def set_baseline(self, latents: Tensor) -> None:
        atomic_write_bytes(self.root / BASELINE, save({"latents": latents.contiguous()}))

    def covered(self, source: str) -> set[int]:
        """Indices of `source` that already have a shard."""
        return {i for s in self.manifest["shards"].get(source, []) for i in range(s["start"], s["end"])}

    def add_shard(self, source: str, start: int, directions: Tensor, effects: Tensor) -> None:
        """Write one shard atomically, then record it in the manifest."""
        end = start + directions.shape[0]
        name = f"{source}/shard-{start:06d}-{end:06d}.safetensors"
        meta = {"format_version": str(SCHEMA_VERSION), "source": source, "start": str(start), "end": str(end)}
        data = {"directions": directions.float().contiguous(), "effects": effects.float().contiguous()}
        atomic_write_bytes(self.root / name, save(data, metadata=meta))
        self.manifest["shards"].setdefault(source, []).append({"file": name, "start": start, "end": end})
        self._save_manifest()

    def record_timing(self, n_vectors: int, seconds: float) -> None:
        self.manifest["timings"].append({"vectors": n_vectors, "seconds": round(seconds, 2)})
        self._save_manifest()

    def load(self, sources: list[str] | None = None) -> tuple[Tensor, Tensor, list[str]]:
        """All shards (of `sources`, default all), ordered by source then index.

        Returns:
            (directions [n, d_model], effects [n, d_sae], source of each row).
        """
        dirs: list[Tensor] = []
        effs: list[Tensor] = []
        names: list[str] = []
        for source in sorted(self.manifest["shards"]):
            if sources is not None and source not in sources:
                continue
            for shard in sorted(self.manifest["shards"][source], key=lambda s: s["start"]):
                data = load_file(str(self.root / shard["file"]))
                dirs.append(data["directions"])
                effs.append(data["effects"])
                names += [source] * data["directions"].shape[0]
        if not dirs:
            raise ValueError(f"{self.root}: no effect shards yet")
        return torch.cat(dirs), torch.cat(effs), names


def _missing_ranges(covered: set[int], n: int, shard_size: int) -> list[tuple[int, int]]:
    """Runs of indices below n with no shard yet, cut into pieces of at most shard_size."""
    ranges: list[tuple[int, int]] = []
    start = None
    for i in range(n + 1):
        missing = i < n and i not in covered
        if missing and start is None:
            start = i
        if start is not None and (not missing or i - start == shard_size):
            ranges.append((start, i))
            start = i if missing else None
    return ranges


def collect_effects(
    model: LoadedModel,
    sae: SAE,
    layer: int,
    prompts: PromptBatch,
    store: EffectStore,
    sources: dict[str, tuple[int, Callable[[int, int], Tensor]]],
    cfg: EffectsConfig,
) -> dict[str, float]:
    """Measure every direction that has no shard yet, at the store's scale, shard by shard.

    Args:
        sources: name -> (how many directions, fn(start, stop) -> [stop-start, d_model] unit directions).

    Returns:
        {"vectors": measured now, "seconds": ..., "vectors_per_s": ...} (zeros when all were there).
    """
    scale = store.scale
    if scale is None:
        raise ValueError("calibrate the store's scale (EffectStore.set_scale) before collecting")
    baseline = store.baseline()
    if baseline is None:
        zeros = torch.zeros(1, sae.cfg.d_in)
        baseline = measure_effects(
            model,
            sae,
            layer,
            prompts,
            zeros,
            cfg,
            seed=cfg.seed + BASELINE_SEED_OFFSET,
            n_samples=cfg.n_samples * cfg.baseline_repeats,
        )[0]
        store.set_baseline(baseline)
    todo = [
        (name, start, stop, fn)
        for name, (n, fn) in sources.items()
        for start, stop in _missing_ranges(store.covered(name), n, cfg.shard_size)
    ]
    total = sum(stop - start for _, start, stop, _ in todo)
    started = time.perf_counter()
    with tqdm(total=total, desc="feature effects", unit="vec", disable=None) as bar:
        for name, start, stop, fn in todo:
            directions = fn(start, stop)
            parts = []
            for lo in range(0, directions.shape[0], cfg.vectors_per_batch):
                chunk = directions[lo : lo + cfg.vectors_per_batch] * scale
                parts.append(
                    measure_effects(model, sae, layer, prompts, chunk, cfg, seed=cfg.seed + start + lo)
                )
                bar.update(chunk.shape[0])
            store.add_shard(name, start, directions, torch.cat(parts) - baseline)
    seconds = time.perf_counter() - started
    if total:
        store.record_timing(total, seconds)
        logger.info("measured %d vectors in %.1f s (%.3f vectors/s)", total, seconds, total / seconds)
    return {
        "vectors": total,
        "seconds": round(seconds, 2),
        "vectors_per_s": total / seconds if total else 0.0,
    }

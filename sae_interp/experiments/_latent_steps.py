"""The SAE half of the main job: SAE, aligned-latent table, latent cache, explanations.

Each step reuses what an earlier run left: a trained SAE (keyed by its training config), the
latent cache (resumes part by part) and finished latents of the explanation run (skipped).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch

from sae_interp._io import user_cache_dir
from sae_interp.cache.config import CacheConfig, LoaderConfig
from sae_interp.clients.factory import ClientConfig, make_client
from sae_interp.clients.local import DEFAULT_LOCAL_MODEL
from sae_interp.config import ModelConfig, config_to_dict
from sae_interp.experiments.train_sae import TrainSAERunConfig
from sae_interp.explain import ExplainConfig, explain_latents
from sae_interp.refusal.latents import AlignedLatent, rank_aligned_latents, write_latent_table
from sae_interp.results import RefusalAlignment
from sae_interp.sae.base import SAE
from sae_interp.scorers.config import ScorerConfig

__all__ = [
    "LatentStepsConfig",
    "aligned_latents_step",
    "cache_step",
    "explain_step",
    "sae_step",
]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LatentStepsConfig:
    """SAE, cache and explanation settings of the main job (sized for a 2-core CPU)."""

    sae: str = ""
    """An SAE folder (SAELens or sparsify format) at a layer of this model; empty trains one at
    the chosen layer (cached under the user cache directory)."""
    sae_train: TrainSAERunConfig = dataclasses.field(default_factory=TrainSAERunConfig)
    """Training settings when no SAE is given (its model and layer come from the main job)."""
    n_latents: int = 8
    """Top-ranked latents (by decoder cosine with r) to cache and explain."""
    cache_data: str = "chat"
    """Corpus the latents are cached over."""
    cache_rows: int = 320
    """Rows of the corpus to cache."""
    cache_ctx_len: int = 64
    cache: CacheConfig = dataclasses.field(default_factory=CacheConfig)
    loader: LoaderConfig = dataclasses.field(
        default_factory=lambda: LoaderConfig(
            min_examples=20, n_train=10, n_test=10, n_non_activating=10, n_quantiles=5
        )
    )
    client: ClientConfig = dataclasses.field(
        default_factory=lambda: ClientConfig(kind="local", model=DEFAULT_LOCAL_MODEL, max_concurrency=8)
    )
    """The explainer/judge LLM: "local" runs in-process (sharing the studied model's weights when it
    names the same model); "openai"/"openrouter"/"vllm" call a server or engine."""
    explain: ExplainConfig = dataclasses.field(
        default_factory=lambda: ExplainConfig(scorers=ScorerConfig(names=("detection", "embedding")))
    )
    """Explainer and scorers. Fuzzing is left out by default: on a 2-core CPU each LLM scorer adds
    minutes per latent (prompt prefill dominates); add it with --set for a server."""


def sae_step(model: Any, cfg: LatentStepsConfig, layer: int) -> tuple[SAE, int, str]:
    """The SAE to study: `cfg.sae` if given, else one trained at `layer` (reused when cached).

    Returns:
        (sae, its layer, where it lives).
    """
    from sae_interp.experiments import train_sae
    from sae_interp.sae.io import load_sae

    if cfg.sae:
        sae = load_sae(cfg.sae)
        sae_layer = sae.cfg.metadata.layer
        if sae_layer is None or sae.cfg.d_in != model.spec.d_model:
            raise ValueError(
                f"--sae {cfg.sae}: d_in={sae.cfg.d_in}, layer={sae_layer}; this model has d_model="
                f"{model.spec.d_model}: give an SAE trained on this model's residual stream"
            )
        return sae, sae_layer, cfg.sae
    train_cfg = dataclasses.replace(cfg.sae_train, model=ModelConfig(name=model.spec.name), layer=layer)
    key = json.dumps({"model": model.spec.name, **config_to_dict(train_cfg)}, sort_keys=True, default=str)
    out = (
        user_cache_dir()
        / "saes"
        / f"{Path(model.spec.name).name}-L{layer}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    )
    if not (out / "summary.json").is_file():
        summary = train_sae.run(dataclasses.replace(train_cfg, out=out), model=model)
        logger.info("trained SAE at layer %d: FVU %.3f, L0 %.1f", layer, summary["fvu"], summary["l0"])
    return load_sae(out / "sae").to(model.device), layer, str(out / "sae")


def aligned_latents_step(
    sae: SAE,
    r: torch.Tensor,
    harmful: torch.Tensor,
    harmless: torch.Tensor,
    path: Path,
    attribution: torch.Tensor | None = None,
) -> list[AlignedLatent]:
    """Rank every latent against r and write refusal/latents.csv."""
    ranked = rank_aligned_latents(sae, r, harmful, harmless, attribution)
    write_latent_table(path, ranked)
    return ranked


def cache_step(model: Any, sae: SAE, layer: int, latents: list[int], cfg: LatentStepsConfig) -> Path:
    """Cache the chosen latents over the corpus (resumable); returns the cache folder."""
    from sae_interp.cache import FeatureCache
    from sae_interp.data import TokenizeConfig, tokenize_rows

    rows = tokenize_rows(
        cfg.cache_data, model.tokenizer, TokenizeConfig(ctx_len=cfg.cache_ctx_len, bos=True, mode="pack"),
        n_rows=cfg.cache_rows,
    )  # fmt: skip
    cache_cfg = dataclasses.replace(cfg.cache, latents=tuple(sorted(latents)))
    key = json.dumps(
        {"model": model.spec.name, "sae": _sae_digest(sae), "data": cfg.cache_data, "rows": cfg.cache_rows,
         "ctx": cfg.cache_ctx_len, "cache": config_to_dict(cache_cfg)},
        sort_keys=True, default=str,
    )  # fmt: skip
    path = user_cache_dir() / "latent_caches" / f"L{layer}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    hookpoint = model.spec.hook_name(layer)
    result = FeatureCache(model, {hookpoint: sae}, cache_cfg).run(
        rows.tokens, path, data_source=cfg.cache_data
    )
    logger.info("latent cache %s (%d parts written now)", result.path, result.parts_written)
    return path


def explain_step(
    model: Any,
    cache_dir: Path,
    hookpoint: str,
    ranked: list[AlignedLatent],
    cfg: LatentStepsConfig,
    run_dir: Path,
    run_config: Any,
) -> dict[str, Any]:
    """Explain and score the chosen latents into `run_dir` (finished latents are skipped)."""
    from sae_interp.cache import FeatureDataset, FeatureLoader

    chosen = ranked[: cfg.n_latents]
    dataset = FeatureDataset(cache_dir, cfg.loader, {hookpoint: [a.latent for a in chosen]})
    alignment = {
        a.latent: RefusalAlignment(
            cosine=a.cosine, mean_diff=a.mean_diff, rank=a.rank, attribution=a.attribution
        )
        for a in chosen
    }

    async def go() -> Any:
        client = make_client(cfg.client, loaded=model)
        try:
            return await explain_latents(
                FeatureLoader(dataset), model.tokenizer, client, cfg.explain, run_dir,
                refusal=alignment, run_config=run_config, total=len(dataset),
            )  # fmt: skip
        finally:
            await client.aclose()

    result = asyncio.run(go())
    skipped = [dataclasses.asdict(s) for s in dataset.skipped]
    if skipped:
        logger.warning("%d latents had too few examples and were skipped: %s", len(skipped), skipped)
    return {
        "done": result.done,
        "reused": result.skipped,
        "failed": len(result.failed),
        "too_few_examples": skipped,
    }


def _sae_digest(sae: SAE) -> str:
    return hashlib.sha256(sae.W_dec.detach().float().cpu().numpy().tobytes()).hexdigest()[:16]

"""A quickly trained SAE on gemma-3-270m and a small, greedy feature-effect collection, shared by the
steering tests that need real effects (built once per session: 1-2 min on 2 idle CPU cores)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import Tensor

LAYER = 6


@dataclass(frozen=True)
class GemmaEffects:
    model: object
    layer: int
    sae: object
    prompts: object
    cfg: object
    scale: float
    directions: Tensor
    """[n, d_model] unit decoder rows."""
    effects: Tensor
    """[n, d_sae] measured effects."""


def quick_sae(model, layer: int, *, d_sae: int = 512, k: int = 16, steps: int = 60):
    """A TopK SAE trained in seconds on ~3k tokens of web text (good enough to have topical latents)."""
    from sae_interp.data import TokenizeConfig, tokenize_rows
    from sae_interp.models import collect_resid
    from sae_interp.sae import SAEConfig, build_sae
    from sae_interp.sae.train import TrainConfig, train_sae

    rows = tokenize_rows("web", model.tokenizer, TokenizeConfig(ctx_len=64), n_rows=48)
    acts = collect_resid(model, layer, rows.tokens)[layer][:, 1:].reshape(-1, model.spec.d_model).float()
    sae = build_sae(SAEConfig(d_in=model.spec.d_model, d_sae=d_sae, architecture="topk", k=k))

    def batches():
        gen = torch.Generator().manual_seed(0)
        while True:
            yield acts[torch.randint(0, acts.shape[0], (256,), generator=gen)]

    train_sae(sae, batches(), TrainConfig(total_steps=steps, lr=1e-3, b_dec_init="mean"), progress=False)
    return sae.requires_grad_(False)


@pytest.fixture(scope="session")
def gemma_effects(gemma, tmp_path_factory) -> GemmaEffects:
    from sae_interp.models import encode_chat
    from sae_interp.steering import EffectsConfig, EffectStore, collect_effects, direction_bank

    sae = quick_sae(gemma, LAYER)
    prompts = encode_chat(gemma, ["I think that", "Yesterday I went"])
    cfg = EffectsConfig(
        n_samples=1,
        max_new_tokens=8,
        temperature=0.0,
        vectors_per_batch=20,
        baseline_repeats=1,
        shard_size=40,
    )
    store = EffectStore(Path(tmp_path_factory.mktemp("effects")), {"test": 1})
    # calibrate_scales on web text puts +1 nat at ~140-290 for unit directions at layer 6 (the
    # median residual norm there is ~3400, inflated by a few huge dimensions): a clear, coherent push
    scale = 150.0
    store.set_scale(scale)
    n = 40
    collect_effects(
        gemma,
        sae,
        LAYER,
        prompts,
        store,
        {"decoder": (n, lambda a, b: direction_bank("decoder", sae, a, b))},
        cfg,
    )
    directions, effects, _ = store.load()
    return GemmaEffects(gemma, LAYER, sae, prompts, cfg, scale, directions, effects)

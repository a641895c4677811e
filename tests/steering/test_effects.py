"""Effect shards: fixed directions per index, resume without recollecting, extension, key checks."""

from __future__ import annotations

import pytest
import torch

from sae_interp.models import encode_chat, load_model
from sae_interp.sae import SAEConfig, build_sae
from sae_interp.steering import EffectsConfig, EffectStore, collect_effects, direction_bank


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    return load_model(tiny_llama_dir, dtype=torch.float32, device="cpu")


def test_directions_depend_only_on_their_index() -> None:
    sae = build_sae(SAEConfig(d_in=16, d_sae=64, architecture="topk", k=4))
    for source in ("decoder", "random"):
        whole = direction_bank(source, sae, 0, 10)
        torch.testing.assert_close(direction_bank(source, sae, 4, 7), whole[4:7])
        torch.testing.assert_close(whole.norm(dim=1), torch.ones(10))
    with pytest.raises(ValueError, match="direction source"):
        direction_bank("nope", sae, 0, 1)


def test_collection_resumes_and_extends(tiny, tmp_path) -> None:
    sae = build_sae(SAEConfig(d_in=tiny.spec.d_model, d_sae=32, architecture="topk", k=4))
    prompts = encode_chat(tiny, ["w1 w2", "w3 w4 w5"])
    cfg = EffectsConfig(n_samples=2, max_new_tokens=3, vectors_per_batch=3, shard_size=4, baseline_repeats=1)
    store = EffectStore(tmp_path, {"k": 1})
    with pytest.raises(ValueError, match="calibrate"):
        collect_effects(tiny, sae, 1, prompts, store, {}, cfg)
    store.set_scale(5.0)

    def sources(n: int):
        return {"random": (n, lambda a, b: direction_bank("random", sae, a, b))}

    first = collect_effects(tiny, sae, 1, prompts, store, sources(6), cfg)
    assert first["vectors"] == 6 and first["vectors_per_s"] > 0
    files = sorted(p.name for p in (tmp_path / "random").iterdir())
    assert files == ["shard-000000-000004.safetensors", "shard-000004-000006.safetensors"]

    reopened = EffectStore(tmp_path, {"k": 1})
    assert reopened.scale == 5.0
    assert collect_effects(tiny, sae, 1, prompts, reopened, sources(6), cfg)["vectors"] == 0
    # extending measures only the new indices
    assert collect_effects(tiny, sae, 1, prompts, reopened, sources(9), cfg)["vectors"] == 3
    directions, effects, names = reopened.load()
    assert effects.shape == (9, 32) and names == ["random"] * 9
    torch.testing.assert_close(directions, direction_bank("random", sae, 0, 9))
    with pytest.raises(ValueError, match="different setup"):
        EffectStore(tmp_path, {"k": 2})

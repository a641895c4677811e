"""Shared fixtures: seeded RNGs, the interop fixture folder, and tiny random HF models built offline."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from sae_interp.cache import FeatureCache
from sae_interp.sae import SAEConfig, SAEMetadata, build_sae
from sae_interp.sae.io import save_sae
from tests.cache import cache_script

FIXTURES = Path(__file__).parent / "fixtures"
INTEROP = FIXTURES / "interop"


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def interop_dir() -> Path:
    """Real files written by SAELens, sparsify and Delphi (see fixtures/interop/README.md)."""
    return INTEROP


@pytest.fixture(scope="session")
def tiny_llama_dir() -> Path:
    """A random-weight LlamaForCausalLM (d_model 64, 2 layers) with a WordLevel tokenizer."""
    return INTEROP / "tiny_llama"


@pytest.fixture(scope="session")
def gemma():
    """The embedded gemma-3-270m (converted once into the user cache, then ~8 s to load)."""
    from sae_interp.models import load_model

    return load_model("gemma-3-270m", dtype=torch.float32, device="cpu")


@pytest.fixture(scope="session")
def qwen():
    """The embedded Qwen2.5-Coder-0.5B-Instruct; tests using it carry the `qwen` marker."""
    from sae_interp.models import load_model

    return load_model("qwen2.5-coder-0.5b-instruct", dtype=torch.float32, device="cpu")


@pytest.fixture(scope="session")
def gguf_reference() -> dict:
    """Outputs of the raw GGUFs through transformers, recorded by fixtures/record_gguf_reference.py."""
    import json

    return json.loads((FIXTURES / "gguf_reference.json").read_text())


@pytest.fixture(scope="session")
def tiny_model(tiny_llama_dir):
    from sae_interp.models import load_model

    return load_model(tiny_llama_dir, dtype=torch.float32, device="cpu")


@pytest.fixture(scope="session")
def tiny_sae_dir(tmp_path_factory) -> Path:
    """A random TopK SAE (d_in 64, d_sae 256, k 8) on residual layer 1, saved once."""
    torch.manual_seed(1234)
    sae = build_sae(SAEConfig(d_in=64, d_sae=256, k=8, metadata=SAEMetadata.for_layer(1)))
    with torch.no_grad():
        sae.b_enc.add_(0.02 * torch.randn(256))  # unequal firing rates, so quantiles and skips matter
    return save_sae(sae, tmp_path_factory.mktemp("sae") / "topk")


@pytest.fixture(scope="session")
def tiny_sae(tiny_sae_dir):
    from sae_interp.sae.io import load_sae

    return load_sae(tiny_sae_dir)


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory, tiny_model, tiny_sae) -> Path:
    """The reference cache of the first 128 fixture rows, written in this process."""
    path = tmp_path_factory.mktemp("cache") / "tiny"
    FeatureCache(tiny_model, {cache_script.HOOKPOINT: tiny_sae}, cache_script.CFG).run(
        cache_script.tokens(), path, data_source="tokens.safetensors"
    )
    return path

"""Fixtures of the cache tests: a small TopK SAE on tiny_llama's layer 1 and a cache built from it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from sae_interp.cache import FeatureCache
from sae_interp.sae import SAEConfig, SAEMetadata, build_sae
from sae_interp.sae.io import save_sae

sys.path.insert(0, str(Path(__file__).parent))
import cache_script  # the subprocess tests' script; it shares its settings with the tests


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


@pytest.fixture(scope="session")
def script():
    return cache_script

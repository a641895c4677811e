"""Shared fixtures: seeded RNGs, the interop fixture folder, and tiny random HF models built offline."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

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

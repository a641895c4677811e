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

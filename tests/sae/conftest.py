"""Synthetic data for SAE tests: sparse combinations of a hidden dictionary of unit vectors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import Tensor

D_IN = 64


class SyntheticActivations:
    """x = sum of `active` random atoms (coefficients in [0.5, 1.5]) + small Gaussian noise."""

    def __init__(self, *, d_in: int = D_IN, n_atoms: int = 128, active: int = 4, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.atoms = torch.nn.functional.normalize(torch.randn(n_atoms, d_in, generator=g), dim=1)
        self.active = active

    def batches(self, n: int, batch_size: int = 128, seed: int = 1) -> Iterator[Tensor]:
        g = torch.Generator().manual_seed(seed)
        n_atoms, d_in = self.atoms.shape
        for _ in range(n):
            which = torch.rand(batch_size, n_atoms, generator=g).argsort(1)[:, : self.active]
            coef = torch.rand(batch_size, self.active, generator=g) + 0.5
            codes = torch.zeros(batch_size, n_atoms).scatter_(1, which, coef)
            yield codes @ self.atoms + 0.01 * torch.randn(batch_size, d_in, generator=g)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """These matrices are tiny: on a shared 2-core machine, intra-op threads cost more than they save."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def synthetic() -> SyntheticActivations:
    return SyntheticActivations()

"""ShuffleBuffer: every row exactly once per pass, bounded memory, real shuffling, determinism."""

from __future__ import annotations

import pytest
import torch

from sae_interp.activations import ShuffleBuffer


def _chunks(n_rows: int, chunk: int):
    """Rows [i, i] for i in 0..n_rows-1, in order, in chunks of `chunk` rows."""
    ids = torch.arange(n_rows, dtype=torch.float32)
    return [torch.stack([part, part], dim=1) for part in ids.split(chunk)]


def test_every_row_once_and_memory_bounded() -> None:
    buffer = ShuffleBuffer(batch_size=32, capacity=256, seed=3)
    batches = list(buffer.batches(_chunks(5000, 50)))
    seen = torch.cat(batches)[:, 0].long()
    assert sorted(seen.tolist()) == list(range(5000))
    assert all(b.shape == (32, 2) for b in batches[:-1])
    assert buffer.peak_rows <= 256 + 50 - 1
    # shuffled: far from corpus order, and rows from early and late chunks mix in one batch
    assert (seen[:-1] < seen[1:]).float().mean() < 0.6
    assert max(float(b[:, 0].max() - b[:, 0].min()) for b in batches) > 200


def test_deterministic_and_drop_last() -> None:
    first = list(ShuffleBuffer(batch_size=16, capacity=64, seed=1).batches(_chunks(100, 7)))
    again = list(ShuffleBuffer(batch_size=16, capacity=64, seed=1).batches(_chunks(100, 7)))
    other = list(ShuffleBuffer(batch_size=16, capacity=64, seed=2).batches(_chunks(100, 7)))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))
    dropped = list(ShuffleBuffer(batch_size=16, capacity=64, drop_last=True).batches(_chunks(100, 7)))
    assert len(dropped) == 100 // 16 and all(b.shape[0] == 16 for b in dropped)


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="capacity"):
        ShuffleBuffer(batch_size=32, capacity=40)
    with pytest.raises(ValueError, match=r"\[n, d\]"):
        list(ShuffleBuffer(batch_size=2, capacity=4).batches([torch.zeros(2, 3, 4)]))

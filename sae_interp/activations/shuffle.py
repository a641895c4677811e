"""A bounded shuffle buffer: turns ordered chunks of activations into shuffled fixed-size batches.

Activations arrive in corpus order (row after row), and neighbouring tokens are strongly correlated,
so an SAE trained on them unshuffled sees biased batches. Shuffling everything needs the whole set in
memory; this buffer holds at most `capacity` rows plus one incoming chunk. When full it is permuted
and its first half is emitted as batches; at the end the rest is permuted and emitted. Every input row
comes out exactly once, so one pass over the chunks is exactly one epoch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import Tensor

__all__ = ["ShuffleBuffer"]


class ShuffleBuffer:
    """Shuffle a stream of [n_i, d] chunks into [batch_size, d] batches with bounded memory.

    Attributes:
        peak_rows: the most rows held at once during the last `batches` call (for tests and logs).
    """

    def __init__(self, *, batch_size: int, capacity: int, seed: int = 0, drop_last: bool = False):
        """Args:
        batch_size: rows per emitted batch.
        capacity: rows kept before emitting; at least 2 * batch_size so each flush emits a batch.
        seed: seeds the permutations (same chunks and seed give the same batches).
        drop_last: drop a final batch smaller than batch_size.
        """
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        if capacity < 2 * batch_size:
            raise ValueError(f"capacity={capacity} must be >= 2 * batch_size={2 * batch_size}")
        self.batch_size = batch_size
        self.capacity = capacity
        self.drop_last = drop_last
        self.peak_rows = 0
        self._generator = torch.Generator().manual_seed(seed)

    def batches(self, chunks: Iterable[Tensor]) -> Iterator[Tensor]:
        """Yield shuffled batches [batch_size, d] of the rows of `chunks` (each [n_i, d]).

        The last batch may be smaller unless `drop_last`; rows of a partial batch are never carried
        into a later call.
        """
        held: list[Tensor] = []
        n_held = 0
        self.peak_rows = 0
        for chunk in chunks:
            if chunk.ndim != 2:
                raise ValueError(f"chunks must be [n, d], got shape {tuple(chunk.shape)}")
            held.append(chunk)
            n_held += chunk.shape[0]
            self.peak_rows = max(self.peak_rows, n_held)
            if n_held >= self.capacity:
                pool = self._permuted(held)
                # Emit whole batches from the first half only: the kept half mixes with new chunks.
                n_out = (pool.shape[0] // 2) // self.batch_size * self.batch_size
                yield from pool[:n_out].split(self.batch_size)
                held, n_held = [pool[n_out:]], pool.shape[0] - n_out
        if n_held:
            for batch in self._permuted(held).split(self.batch_size):
                if batch.shape[0] == self.batch_size or not self.drop_last:
                    yield batch

    def _permuted(self, held: list[Tensor]) -> Tensor:
        pool = torch.cat(held) if len(held) > 1 else held[0]
        return pool[torch.randperm(pool.shape[0], generator=self._generator)]

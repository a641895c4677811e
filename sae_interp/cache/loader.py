"""FeatureDataset / FeatureLoader: turn a cache (ours or Delphi's) into one LatentRecord per latent.

Boundary decisions:
- Examples are the fixed, non-overlapping windows `[k * example_ctx_len, (k + 1) * example_ctx_len)`
  of each row (the last one is shorter when ctx_len is not a multiple). An example's activation is
  the largest activation of the latent inside it.
- Quantiles are by rank: examples sorted by activation are cut into `n_quantiles` groups of equal
  size; quantile 1 holds the strongest. Test examples are drawn per quantile from the examples
  *not* used for training, so train and test never overlap (Delphi's can).
- "Zero for the latent" means zero at every cached position; with BOS excluded at caching time,
  position 0 is not cached.
- Memory: one latent range (split) is loaded at a time (two when neighbours sit in another range);
  records are built latent by latent. Random choices use a generator seeded by (seed, hookpoint,
  latent), so a record does not depend on which other latents were requested.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sae_interp.cache.config import LoaderConfig
from sae_interp.cache.layout import HIST_EDGES, CacheError, CacheIndex, open_cache
from sae_interp.cache.records import Example, ExampleKind, LatentRecord, LatentSummary, SkippedLatent
from sae_interp.sae.base import SAE

__all__ = ["FeatureDataset", "FeatureLoader", "latents_from_scores"]

logger = logging.getLogger(__name__)

_SPLITS_IN_MEMORY = 2


def latents_from_scores(
    path: str | Path,
    n: int,
    *,
    column: str = "rank",
    latent_column: str = "latent",
    descending: bool | None = None,
) -> list[int]:
    """The first `n` latents of a score table CSV (e.g. refusal/latents.csv), best first.

    Args:
        path: CSV with a header row.
        n: how many latents.
        column: the column to sort by.
        latent_column: the column holding latent ids.
        descending: sort order; default ascending for a "rank" column, descending otherwise.

    Raises:
        ValueError: a column is missing (the message lists the header).
    """
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0]) if rows else []
    for name in (column, latent_column):
        if name not in header:
            raise ValueError(f"{path}: no column {name!r} (columns: {header})")
    desc = column != "rank" if descending is None else descending
    rows.sort(key=lambda r: float(r[column]), reverse=desc)
    return [int(r[latent_column]) for r in rows[:n]]


class FeatureDataset:
    """Iterate LatentRecords of the selected latents of a cache folder.

    Args:
        path: a native cache folder or a Delphi cache (its root, `latents/` or a hookpoint folder).
        cfg: loader settings.
        latents: hookpoint -> latent ids (a list or range), or ids for the only/first hookpoint;
            None selects every latent of every hookpoint.
        model: when given, the cache must have been made with this model name.
        saes: hookpoint -> SAE, for "neighbours" non-activating examples.

    After iteration, `skipped` lists the latents with fewer than `min_examples` examples.
    """

    def __init__(
        self,
        path: str | Path,
        cfg: LoaderConfig | None = None,
        latents: Mapping[str, Sequence[int]] | Sequence[int] | None = None,
        *,
        model: str | None = None,
        saes: Mapping[str, SAE] | None = None,
    ):
        self.index: CacheIndex = open_cache(path)
        self.cfg = cfg or LoaderConfig()
        if model is not None and self.index.model != model:
            raise CacheError(
                f"{self.index.root}: cache made with model {self.index.model!r}, expected {model!r}"
            )
        self.selection = self._select(latents)
        self.saes = dict(saes or {})
        if self.cfg.non_activating_source == "neighbours" and not set(self.selection) <= set(self.saes):
            raise ValueError(
                "non_activating_source='neighbours' needs saes={hookpoint: SAE} for every hookpoint"
            )
        self.skipped: list[SkippedLatent] = []
        self._tokens: Tensor | None = None
        self._splits: OrderedDict[tuple[str, tuple[int, int]], tuple[Tensor, Tensor, Tensor]] = OrderedDict()
        self._unit_decoders: dict[str, Tensor] = {}  # per hookpoint, normalised once, not per latent
        self._windows: _Windows | None = None

    def _select(self, latents: Mapping[str, Sequence[int]] | Sequence[int] | None) -> dict[str, list[int]]:
        hps = self.index.hookpoints
        if latents is None:
            return {hp: list(range(info.d_sae)) for hp, info in hps.items()}
        chosen = dict(latents) if isinstance(latents, Mapping) else {next(iter(hps)): latents}
        for hp, ids in chosen.items():
            if hp not in hps:
                raise ValueError(f"hookpoint {hp!r} is not in the cache (it has {sorted(hps)})")
            bad = [i for i in ids if not 0 <= i < hps[hp].d_sae]
            if bad:
                raise ValueError(f"{hp}: latents {bad[:5]} outside 0..{hps[hp].d_sae - 1}")
        return {hp: list(ids) for hp, ids in chosen.items()}

    def __len__(self) -> int:
        return sum(len(ids) for ids in self.selection.values())

    def __iter__(self) -> Iterator[LatentRecord]:
        self.skipped = []
        for hp, ids in self.selection.items():
            for split in self.index.hookpoints[hp].splits:
                for latent in (i for i in ids if split[0] <= i < split[1]):
                    if (record := self.record(hp, latent)) is not None:
                        yield record
        if self.skipped:
            logger.warning(
                "%d latents skipped (fewer than %d examples): %s",
                len(self.skipped),
                self.cfg.min_examples,
                [(s.hookpoint, s.latent, s.n_examples) for s in self.skipped[:20]],
            )

    # ---- loading -------------------------------------------------------------------------------

    @property
    def tokens(self) -> Tensor:
        if self._tokens is None:
            self._tokens = self.index.tokens()
        return self._tokens

    def _split_data(self, hp: str, split: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
        """One latent range: (locations [n, 3], values [n]) sorted by latent, and offsets [width + 1]
        such that latent `split[0] + j` owns entries offsets[j]:offsets[j + 1]."""
        key = (hp, split)
        if key not in self._splits:
            loc, val = self.index.read_split(hp, split)
            _check_rows(loc, self.index, hp, split)
            order = torch.argsort(loc[:, 2], stable=True)
            counts = torch.bincount(loc[:, 2], minlength=split[1] - split[0])
            offsets = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)])
            self._splits[key] = (loc[order], val[order], offsets)
            while len(self._splits) > _SPLITS_IN_MEMORY:
                self._splits.popitem(last=False)
        self._splits.move_to_end(key)
        return self._splits[key]

    def entries(self, hp: str, latent: int) -> tuple[Tensor, Tensor, Tensor]:
        """(rows, positions, values) of every cached activation of `latent`, in (row, position) order."""
        split = self.index.hookpoints[hp].split_of(latent)
        loc, val, offsets = self._split_data(hp, split)
        lo, hi = int(offsets[latent - split[0]]), int(offsets[latent - split[0] + 1])
        return loc[lo:hi, 0], loc[lo:hi, 1], val[lo:hi]

    # ---- one record ----------------------------------------------------------------------------

    @property
    def windows(self) -> _Windows:
        """The token array cut into example windows (built on first use, then shared by all records)."""
        if self._windows is None:
            self._windows = _Windows(self.tokens, self.cfg.example_ctx_len)
        return self._windows

    def record(self, hp: str, latent: int) -> LatentRecord | None:
        """The record of one latent, or None (and an entry in `skipped`) if it has too few examples."""
        rows, pos, vals = self.entries(hp, latent)
        win = self.windows
        keys, inverse = torch.unique(rows * win.n_win + pos // win.e, return_inverse=True)
        if len(keys) < self.cfg.min_examples:
            self.skipped.append(
                SkippedLatent(hp, latent, len(keys), f"fewer than {self.cfg.min_examples} examples")
            )
            return None
        peak = torch.zeros(len(keys)).scatter_reduce_(0, inverse, vals, "amax", include_self=False)
        order = torch.argsort(peak, descending=True, stable=True).numpy()
        quantile = np.empty(len(keys), dtype=np.int64)
        quantile[order] = np.arange(len(keys)) * self.cfg.n_quantiles // len(keys) + 1
        rng = np.random.default_rng([self.cfg.seed, zlib.crc32(hp.encode()), latent])
        train = _sample_train(self.cfg, order, quantile, rng)
        test = _sample_test(self.cfg, train, quantile, rng)
        activating = win.activating(keys, inverse, pos % win.e, vals, np.concatenate([train, test]), quantile)
        neighbours = self._neighbours(hp, latent)
        return LatentRecord(
            hookpoint=hp,
            latent=latent,
            train=activating[: len(train)],
            test=activating[len(train) :],
            non_activating=self._non_activating(hp, keys.numpy(), neighbours, rng),
            statistics=_summary(vals, self.index.n_tokens()),
            n_examples=len(keys),
            neighbours=neighbours,
        )

    def _neighbours(self, hp: str, latent: int) -> list[int]:
        if hp not in self.saes:
            return []
        if hp not in self._unit_decoders:
            w_dec = self.saes[hp].W_dec.detach().float().cpu()
            self._unit_decoders[hp] = torch.nn.functional.normalize(w_dec, dim=1)
        w = self._unit_decoders[hp]
        sims = w @ w[latent]
        sims[latent] = -float("inf")
        return sims.topk(min(self.cfg.n_neighbours, len(sims) - 1)).indices.tolist()

    def _non_activating(
        self, hp: str, active: np.ndarray, neighbours: list[int], rng: np.random.Generator
    ) -> list[Example]:
        want, n_win = self.cfg.n_non_activating, self.windows.n_win
        taken: set[int] = set(active.tolist())
        picked: list[tuple[int, ExampleKind, int | None]] = []  # (window key, kind, neighbour)
        if self.cfg.non_activating_source == "neighbours":
            for other in neighbours:
                rows, pos, _ = self.entries(hp, other)
                for key in _unique_in_order((rows * n_win + pos // self.windows.e).tolist(), rng):
                    if len(picked) < want and key not in taken:
                        taken.add(key)
                        picked.append((key, "neighbour", other))
        need = want - len(picked)
        if need > 0:
            # Distinct candidate windows in random order; the first `need` that the latent (or a
            # neighbour pick) does not use. Drawing need + len(taken) guarantees enough.
            n_cand = len(self.index.rows) * n_win
            draw = rng.choice(n_cand, size=min(n_cand, need + len(taken)), replace=False)
            keys = self.index.rows.numpy()[draw // n_win] * n_win + draw % n_win
            fresh = keys[~np.isin(keys, np.fromiter(taken, dtype=np.int64, count=len(taken)))][:need]
            random_kind: ExampleKind = "random"
            picked.extend((key, random_kind, None) for key in fresh.tolist())
        return self.windows.zero(picked)


class _Windows:
    """The token array cut into its example windows once: key `row * n_win + k` is row `row`'s tokens
    [k * e, (k + 1) * e), the last window of a row shorter when ctx_len is not a multiple of e.

    A record's examples are rows of blocks gathered at once (see `Example`).
    """

    def __init__(self, tokens: Tensor, e: int):
        n_rows, ctx_len = tokens.shape
        self.e, self.n_win = e, -(-ctx_len // e)
        pad = self.n_win * e - ctx_len
        padded = torch.nn.functional.pad(tokens, (0, pad)) if pad else tokens
        self.tokens = padded.reshape(n_rows * self.n_win, e)
        self.lengths = np.minimum(e, ctx_len - np.arange(self.n_win) * e)
        """Tokens in window k of a row."""

    def activating(
        self,
        keys: Tensor,
        inverse: Tensor,
        offset: Tensor,
        vals: Tensor,
        idx: np.ndarray,
        quantile: np.ndarray,
    ) -> list[Example]:
        """Examples of a latent's activating windows `keys[idx]`; entry i of (inverse, offset, vals)
        is an activation `vals[i]` at token `offset[i]` of window `keys[inverse[i]]`."""
        chosen = torch.from_numpy(idx)
        slot = torch.full((len(keys),), -1, dtype=torch.int64)
        slot[chosen] = torch.arange(len(idx))
        mine = slot[inverse]
        keep = mine >= 0
        acts = torch.zeros(len(idx), self.e)
        acts[mine[keep], offset[keep]] = vals[keep]
        q = quantile[idx].tolist()
        return self._examples(
            keys[chosen].numpy(), acts, [("activating", q[j], None) for j in range(len(idx))]
        )

    def zero(self, picked: list[tuple[int, ExampleKind, int | None]]) -> list[Example]:
        """Examples of windows (key, kind, neighbour) where the latent is zero."""
        keys = np.array([p[0] for p in picked], dtype=np.int64)
        return self._examples(keys, torch.zeros(len(keys), self.e), [(p[1], None, p[2]) for p in picked])

    def _examples(
        self, keys: np.ndarray, acts: Tensor, tags: list[tuple[ExampleKind, int | None, int | None]]
    ) -> list[Example]:
        """One Example per key, sharing one gathered token block; tags are (kind, quantile, neighbour)."""
        toks = self.tokens[torch.from_numpy(keys)]
        k = keys % self.n_win
        rows, starts, lengths = (keys // self.n_win).tolist(), (k * self.e).tolist(), self.lengths[k].tolist()
        return [Example(toks, acts, j, lengths[j], rows[j], starts[j], *tags[j]) for j in range(len(keys))]


def _sample_train(
    cfg: LoaderConfig, order: np.ndarray, quantile: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Indices of the train examples, strongest first."""
    n = min(cfg.n_train, len(order))
    if cfg.train_sampler == "top":
        return order[:n]
    if cfg.train_sampler == "random":
        chosen = rng.choice(len(order), size=n, replace=False)
    elif cfg.train_sampler == "mix":
        top = order[: n // 2]
        chosen = np.concatenate([top, rng.choice(order[n // 2 :], size=n - len(top), replace=False)])
    else:
        chosen = _per_quantile(np.arange(len(order)), quantile, n, cfg.n_quantiles, rng)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return chosen[np.argsort(rank[chosen])]


def _sample_test(
    cfg: LoaderConfig, train: np.ndarray, quantile: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Indices of test examples, drawn per quantile from the examples not in `train`, by quantile."""
    free = np.ones(len(quantile), dtype=bool)
    free[train] = False
    rest = np.flatnonzero(free)
    chosen = _per_quantile(rest, quantile, min(cfg.n_test, len(rest)), cfg.n_quantiles, rng)
    return chosen[np.lexsort((chosen, quantile[chosen]))]


def _per_quantile(
    pool: np.ndarray, quantile: np.ndarray, n: int, n_quantiles: int, rng: np.random.Generator
) -> np.ndarray:
    """About n / n_quantiles random members of `pool` from each quantile; shortfalls are topped up
    from the other quantiles, so exactly min(n, len(pool)) come back.

    One draw for all quantiles: members sorted by (quantile, random key), the first `want[q]` of
    each quantile taken.
    """
    n = min(n, len(pool))
    base, extra = divmod(n, n_quantiles)
    q = quantile[pool]
    by_q = np.lexsort((rng.random(len(pool)), q))
    q_sorted = q[by_q]
    rank_in_q = np.arange(len(pool)) - np.searchsorted(q_sorted, q_sorted)
    first = rank_in_q < base + (q_sorted <= extra)
    chosen = pool[by_q[first]]
    if len(chosen) < n:
        chosen = np.concatenate([chosen, rng.choice(pool[by_q[~first]], size=n - len(chosen), replace=False)])
    return chosen


def _unique_in_order(keys: list[int], rng: np.random.Generator) -> list[int]:
    unique = list(dict.fromkeys(keys))
    return [unique[i] for i in rng.permutation(len(unique))]


def _summary(vals: Tensor, n_tokens: int) -> LatentSummary:
    bins = torch.bucketize(vals.double().abs(), HIST_EDGES, right=True)
    return LatentSummary(
        count=len(vals),
        frequency=len(vals) / max(n_tokens, 1),
        max=float(vals.max()) if len(vals) else 0.0,
        mean=float(vals.double().mean()) if len(vals) else 0.0,
        hist=torch.bincount(bins, minlength=len(HIST_EDGES) + 1).tolist(),
    )


def _check_rows(loc: Tensor, index: CacheIndex, hp: str, split: tuple[int, int]) -> None:
    if len(loc) == 0:
        return
    if int(loc[:, 0].max()) >= index.n_rows or int(loc[:, 1].max()) >= index.ctx_len or int(loc.min()) < 0:
        raise CacheError(
            f"{index.root}: {hp} latents {split[0]}_{split[1]} hold locations outside the token array "
            f"[{index.n_rows}, {index.ctx_len}] (a part from another cache?)"
        )
    if int(loc[:, 2].max()) >= split[1] - split[0]:
        raise CacheError(
            f"{index.root}: {hp} latents {split[0]}_{split[1]} hold relative latent ids beyond "
            f"{split[1] - split[0] - 1} (files from a cache with other splits?)"
        )


class FeatureLoader:
    """Async iteration over a FeatureDataset, building records in a worker thread.

    `async for record in FeatureLoader(dataset)` overlaps loading with whatever the consumer awaits
    (LLM calls); at most `cfg.prefetch` records wait in memory.
    """

    def __init__(self, dataset: FeatureDataset):
        self.dataset = dataset

    @property
    def skipped(self) -> list[SkippedLatent]:
        return self.dataset.skipped

    async def __aiter__(self) -> AsyncIterator[LatentRecord]:
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=self.dataset.cfg.prefetch)
        done = object()
        iterator = iter(self.dataset)

        async def produce() -> None:
            try:
                while (item := await asyncio.to_thread(next, iterator, done)) is not done:
                    await queue.put(item)
            except Exception as err:  # handed to the consumer, which re-raises it
                await queue.put(err)
            await queue.put(done)

        task = asyncio.create_task(produce())
        try:
            while (item := await queue.get()) is not done:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            task.cancel()

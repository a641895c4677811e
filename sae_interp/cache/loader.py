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

    def record(self, hp: str, latent: int) -> LatentRecord | None:
        """The record of one latent, or None (and an entry in `skipped`) if it has too few examples."""
        rows, pos, vals = self.entries(hp, latent)
        e = self.cfg.example_ctx_len
        n_win = -(-self.index.ctx_len // e)
        keys, inverse = torch.unique(rows * n_win + pos // e, return_inverse=True)
        if len(keys) < self.cfg.min_examples:
            self.skipped.append(
                SkippedLatent(hp, latent, len(keys), f"fewer than {self.cfg.min_examples} examples")
            )
            return None
        peak = torch.zeros(len(keys)).scatter_reduce_(0, inverse, vals, "amax", include_self=False)
        order = torch.argsort(peak, descending=True, stable=True)
        quantile = torch.empty(len(keys), dtype=torch.int64)
        quantile[order] = torch.arange(len(keys)) * self.cfg.n_quantiles // len(keys) + 1
        rng = np.random.default_rng([self.cfg.seed, zlib.crc32(hp.encode()), latent])
        train = _sample_train(self.cfg, order.numpy(), quantile.numpy(), rng)
        test = _sample_test(self.cfg, train, quantile.numpy(), rng)
        build = _ExampleBuilder(self.tokens, keys, inverse, pos % e, vals, e, n_win)
        neighbours = self._neighbours(hp, latent)
        return LatentRecord(
            hookpoint=hp,
            latent=latent,
            train=build.activating(train, quantile),
            test=build.activating(test, quantile),
            non_activating=self._non_activating(hp, keys, neighbours, build, rng),
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
        self, hp: str, active: Tensor, neighbours: list[int], build: _ExampleBuilder, rng: np.random.Generator
    ) -> list[Example]:
        want = self.cfg.n_non_activating
        taken: set[int] = set(active.tolist())
        picked: list[tuple[int, ExampleKind, int | None]] = []  # (window key, kind, neighbour)
        if self.cfg.non_activating_source == "neighbours":
            for other in neighbours:
                rows, pos, _ = self.entries(hp, other)
                for key in _unique_in_order((rows * build.n_win + pos // build.e).tolist(), rng):
                    if len(picked) < want and key not in taken:
                        taken.add(key)
                        picked.append((key, "neighbour", other))
        need = want - len(picked)
        if need > 0:
            # Distinct candidate windows in random order; the first `need` that the latent (or a
            # neighbour pick) does not use. Drawing need + len(taken) guarantees enough.
            n_cand = len(self.index.rows) * build.n_win
            draw = rng.choice(n_cand, size=min(n_cand, need + len(taken)), replace=False)
            keys = self.index.rows.numpy()[draw // build.n_win] * build.n_win + draw % build.n_win
            fresh = keys[~np.isin(keys, np.fromiter(taken, dtype=np.int64, count=len(taken)))][:need]
            random_kind: ExampleKind = "random"
            picked.extend((key, random_kind, None) for key in fresh.tolist())
        return build.zero(picked)


class _ExampleBuilder:
    """Cuts windows out of the token array and fills in one latent's per-token activations, in batches."""

    def __init__(
        self, tokens: Tensor, keys: Tensor, inverse: Tensor, offset: Tensor, vals: Tensor, e: int, n_win: int
    ):
        self.tokens, self.keys, self.e, self.n_win = tokens, keys, e, n_win
        self.inverse, self.offset, self.vals = inverse, offset, vals

    def _windows(self, keys: Tensor) -> tuple[list[int], list[int], list[int], Tensor]:
        """(rows, starts, lengths, tokens [n, e]) of window keys; the last window of a row may be short."""
        rows, starts = keys // self.n_win, keys % self.n_win * self.e
        ctx_len = self.tokens.shape[1]
        cols = (starts[:, None] + torch.arange(self.e)).clamp_max(ctx_len - 1)
        lengths = (ctx_len - starts).clamp_max(self.e)
        return rows.tolist(), starts.tolist(), lengths.tolist(), self.tokens[rows[:, None], cols]

    def activating(self, idx: list[int], quantile: Tensor) -> list[Example]:
        """Examples of activating windows `idx` (indices into `keys`)."""
        if not idx:
            return []
        chosen = torch.tensor(idx, dtype=torch.int64)
        slot = torch.full((len(self.keys),), -1, dtype=torch.int64)
        slot[chosen] = torch.arange(len(idx))
        mine = slot[self.inverse]
        keep = mine >= 0
        rows, starts, lengths, toks = self._windows(self.keys[chosen])
        acts = torch.zeros(toks.shape)
        acts[mine[keep], self.offset[keep]] = self.vals[keep]
        q = quantile[chosen].tolist()
        return [
            Example(t, a, rows[j], starts[j], "activating", q[j])
            for j, (t, a) in enumerate(zip(_cut(toks, lengths), _cut(acts, lengths), strict=True))
        ]

    def zero(self, picked: list[tuple[int, ExampleKind, int | None]]) -> list[Example]:
        """Examples of windows (key, kind, neighbour) where the latent is zero."""
        if not picked:
            return []
        rows, starts, lengths, toks = self._windows(torch.tensor([p[0] for p in picked], dtype=torch.int64))
        zeros = torch.zeros(toks.shape)
        return [
            Example(t, z, rows[j], starts[j], picked[j][1], None, picked[j][2])
            for j, (t, z) in enumerate(zip(_cut(toks, lengths), _cut(zeros, lengths), strict=True))
        ]


def _cut(windows: Tensor, lengths: list[int]) -> list[Tensor]:
    """Row j of `windows` cut to lengths[j], as views; one unbind is far cheaper than an index per row."""
    full = windows.shape[1]
    return [row if n == full else row[:n] for row, n in zip(windows.unbind(0), lengths, strict=True)]


def _sample_train(
    cfg: LoaderConfig, order: np.ndarray, quantile: np.ndarray, rng: np.random.Generator
) -> list[int]:
    """Indices of the train examples, strongest quantile first."""
    n = min(cfg.n_train, len(order))
    if cfg.train_sampler == "top":
        chosen = order[:n]
    elif cfg.train_sampler == "random":
        chosen = rng.choice(len(order), size=n, replace=False)
    elif cfg.train_sampler == "mix":
        top = order[: n // 2]
        rest = np.setdiff1d(order, top)
        chosen = np.concatenate([top, rng.choice(rest, size=n - len(top), replace=False)])
    else:
        chosen = _per_quantile(np.arange(len(order)), quantile, n, cfg.n_quantiles, rng)
    return _by_strength(chosen, order)


def _sample_test(
    cfg: LoaderConfig, train: list[int], quantile: np.ndarray, rng: np.random.Generator
) -> list[int]:
    """Indices of test examples, drawn per quantile from the examples not in `train`."""
    rest = np.setdiff1d(np.arange(len(quantile)), np.asarray(train, dtype=np.int64))
    chosen = _per_quantile(rest, quantile, min(cfg.n_test, len(rest)), cfg.n_quantiles, rng)
    return sorted(chosen.tolist(), key=lambda i: (int(quantile[i]), i))


def _per_quantile(
    pool: np.ndarray, quantile: np.ndarray, n: int, n_quantiles: int, rng: np.random.Generator
) -> np.ndarray:
    """About n / n_quantiles random members of `pool` from each quantile; shortfalls are topped up
    from the other quantiles, so exactly min(n, len(pool)) come back."""
    base, extra = divmod(n, n_quantiles)
    picked: list[np.ndarray] = []
    for q in range(1, n_quantiles + 1):
        members = pool[quantile[pool] == q]
        want = min(base + (q <= extra), len(members))
        picked.append(rng.choice(members, size=want, replace=False))
    chosen = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
    if len(chosen) < n:
        left = np.setdiff1d(pool, chosen)
        chosen = np.concatenate([chosen, rng.choice(left, size=n - len(chosen), replace=False)])
    return chosen.astype(np.int64)


def _by_strength(chosen: np.ndarray, order: np.ndarray) -> list[int]:
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return sorted(chosen.tolist(), key=lambda i: rank[i])


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

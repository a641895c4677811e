"""The cache on disk: file names, the manifest, part files, and reading a cache (ours or Delphi's).

Native layout (CONVENTIONS section 6)::

    <cache>/manifest.json                      settings + every finished part
    <cache>/manifest.rank-R.json               the same, per process, in a multi-process run
    <cache>/tokens.safetensors                 "tokens" int64 [n_rows, ctx_len], written once
    <cache>/latents/<hookpoint>/<start>_<end>/part-NNNNN.safetensors
    <cache>/latents/<hookpoint>/statistics.safetensors

`<end>` is exclusive here (Delphi's file names use an inclusive end). A part holds the nonzero
activations of token rows [NNNNN * rows_per_part, ...) for latents [start, end): `locations`
int32 [n, 3] = (row, position, latent - start) and `activations` [n] (float16 or float32), plus the
per-latent statistics of those rows (`stat_*`), written together so that a part and its statistics
can never disagree. A part is listed in a manifest only after all its files are in place.

Delphi layout (read only): `latents/<hookpoint>/<start>_<end_inclusive>.safetensors` with
`locations` uint16/uint32 [n, 3], `activations` float16 and a copy of `tokens` in each file.
"""

from __future__ import annotations

import itertools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

from sae_interp._io import read_json

__all__ = [
    "FORMAT_VERSION",
    "HIST_EDGES",
    "CacheError",
    "CacheIndex",
    "HookpointIndex",
    "LatentStatistics",
    "open_cache",
    "part_path",
    "read_part",
    "split_ranges",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TOKENS = "tokens.safetensors"
STATISTICS = "statistics.safetensors"
HIST_EDGES = torch.tensor([2.0**e for e in range(-8, 17)], dtype=torch.float64)
"""Histogram bin edges of |activation| (log2-spaced, 2^-8 .. 2^16): fixed in advance so that the
histograms of parts written by different processes add up. Bin 0 is below 2^-8, the last bin is
at or above 2^16."""
_DELPHI_FILE = re.compile(r"^(\d+)_(\d+)\.safetensors$")


class CacheError(ValueError):
    """A cache file is missing, corrupt, or does not belong to this cache; the message names it."""


@dataclass(frozen=True)
class LatentStatistics:
    """Per-latent statistics of one hookpoint, over every cached token. All tensors are [d_sae]."""

    count: Tensor
    """int64 number of cached nonzero activations."""
    total: Tensor
    """float64 sum of activations."""
    max: Tensor
    """float32 largest activation (0 where the latent never fired)."""
    hist: Tensor
    """int64 [d_sae, len(HIST_EDGES) + 1] counts of |activation| per log2 bin."""
    n_tokens: int
    """Tokens the statistics cover (BOS excluded unless kept)."""

    @property
    def frequency(self) -> Tensor:
        """Fraction of tokens on which each latent fired."""
        return self.count.double() / max(self.n_tokens, 1)

    @property
    def mean(self) -> Tensor:
        """Mean activation where the latent fired (0 where it never did)."""
        return self.total / self.count.clamp_min(1)


def split_ranges(d_sae: int, n_splits: int) -> list[tuple[int, int]]:
    """[start, end) latent ranges covering 0..d_sae, as equal as possible."""
    if not 0 < n_splits <= d_sae:
        raise ValueError(f"n_splits must be in 1..d_sae={d_sae}, got {n_splits}")
    bounds = [round(i * d_sae / n_splits) for i in range(n_splits + 1)]
    return list(itertools.pairwise(bounds))


def part_path(root: Path, hookpoint: str, split: tuple[int, int], part: int) -> Path:
    """Where part `part` of `hookpoint`'s latent range `split` lives."""
    return root / "latents" / hookpoint / f"{split[0]}_{split[1]}" / f"part-{part:05d}.safetensors"


def read_part(path: Path, *, model: str | None = None) -> tuple[Tensor, Tensor]:
    """Read one part (or Delphi split) file.

    Args:
        path: the safetensors file.
        model: when given, the `model` recorded in a native part must equal it.

    Returns:
        (locations int64 [n, 3], activations float32 [n]).

    Raises:
        CacheError: missing file, unreadable file, wrong model, missing or mis-shaped tensors.
    """
    if not path.is_file():
        raise CacheError(f"{path}: part file is missing; the cache is incomplete (re-run to rebuild it)")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            keys = set(f.keys())
            if not {"locations", "activations"} <= keys:
                raise CacheError(
                    f"{path}: expected tensors 'locations' and 'activations', found {sorted(keys)}"
                )
            locations, activations = f.get_tensor("locations"), f.get_tensor("activations")
    except (SafetensorError, OSError, RuntimeError) as err:
        raise CacheError(f"{path}: not a readable safetensors file ({err}); delete it and resume") from err
    if model is not None and meta.get("model", model) != model:
        raise CacheError(f"{path}: written for model {meta['model']!r}, but this cache is for {model!r}")
    if locations.ndim != 2 or locations.shape[1] != 3 or activations.shape != (locations.shape[0],):
        raise CacheError(
            f"{path}: bad shapes locations {list(locations.shape)} (want [n, 3]) and "
            f"activations {list(activations.shape)} (want [n])"
        )
    return locations.long(), activations.float()


@dataclass
class HookpointIndex:
    """The files of one hookpoint."""

    d_sae: int
    splits: list[tuple[int, int]]
    """[start, end) latent ranges."""
    files: dict[tuple[int, int], list[Path]] = field(default_factory=dict)
    """Latent range -> its part files, in row order."""
    sae: dict[str, Any] = field(default_factory=dict)
    """Summary of the SAE (native caches)."""

    def split_of(self, latent: int) -> tuple[int, int]:
        for split in self.splits:
            if split[0] <= latent < split[1]:
                return split
        raise ValueError(f"latent {latent} is outside 0..{self.d_sae - 1}")


@dataclass
class CacheIndex:
    """What `open_cache` found: settings, hookpoints and their part files."""

    root: Path
    kind: Literal["native", "delphi"]
    model: str
    ctx_len: int
    n_rows: int
    """Rows of the token array (a partial cache covers only `rows` of them)."""
    keep_bos: bool
    hookpoints: dict[str, HookpointIndex]
    manifest: dict[str, Any]
    tokens_file: Path
    rows: Tensor
    """int64 ids of the token rows the cache covers (all rows of a finished cache)."""

    def tokens(self) -> Tensor:
        """int64 [n_rows, ctx_len] token ids."""
        return _read_tokens(self.tokens_file)

    def statistics(self, hookpoint: str) -> LatentStatistics:
        """Per-latent statistics: from `statistics.safetensors`, else summed over the parts."""
        saved = self.root / "latents" / hookpoint / STATISTICS
        if self.kind == "native" and saved.is_file():
            return _read_statistics(saved)
        return _sum_statistics(self, hookpoint)

    def read_split(self, hookpoint: str, split: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """All entries of one latent range, parts concatenated in row order.

        Returns:
            locations [n, 3] int64 (row, position, latent - split start) and values [n].
        """
        loaded = [read_part(p, model=self.model or None) for p in self.hookpoints[hookpoint].files[split]]
        if not loaded:
            return torch.zeros(0, 3, dtype=torch.int64), torch.zeros(0)
        return torch.cat([x[0] for x in loaded]), torch.cat([x[1] for x in loaded])

    def n_tokens(self) -> int:
        """Tokens the statistics cover."""
        return len(self.rows) * (self.ctx_len - (0 if self.keep_bos else 1))


def _read_tokens(path: Path) -> Tensor:
    try:
        with safe_open(str(path), "pt") as f:
            tokens = f.get_tensor("tokens")
    except (SafetensorError, OSError, RuntimeError) as err:
        raise CacheError(f"{path}: cannot read 'tokens' ({err})") from err
    if tokens.ndim != 2:
        raise CacheError(f"{path}: tokens must be [n_rows, ctx_len], got {list(tokens.shape)}")
    return tokens.long()


def _read_statistics(path: Path) -> LatentStatistics:
    with safe_open(str(path), "pt") as f:
        n_tokens = int((f.metadata() or {})["n_tokens"])
        return LatentStatistics(
            count=f.get_tensor("count"),
            total=f.get_tensor("total"),
            max=f.get_tensor("max"),
            hist=f.get_tensor("hist"),
            n_tokens=n_tokens,
        )


def _sum_statistics(index: CacheIndex, hookpoint: str) -> LatentStatistics:
    hp = index.hookpoints[hookpoint]
    n_bins = len(HIST_EDGES) + 1
    count = torch.zeros(hp.d_sae, dtype=torch.int64)
    total = torch.zeros(hp.d_sae, dtype=torch.float64)
    top = torch.zeros(hp.d_sae, dtype=torch.float32)
    hist = torch.zeros(hp.d_sae, n_bins, dtype=torch.int64)
    for (start, end), paths in hp.files.items():
        for path in paths:
            locations, values = read_part(path)
            stats = latent_statistics(locations[:, 2], values, end - start)
            count[start:end] += stats[0]
            total[start:end] += stats[1]
            top[start:end] = torch.maximum(top[start:end], stats[2])
            hist[start:end] += stats[3]
    return LatentStatistics(count, total, top, hist, index.n_tokens())


def latent_statistics(latents: Tensor, values: Tensor, width: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(count int64, sum float64, max float32, hist int64 [width, bins]) of `values` grouped by latent.

    Args:
        latents: [n] latent ids relative to the range start, in 0..width-1.
        values: [n] activations.
        width: latents in the range.
    """
    latents = latents.long()
    values64 = values.double()
    count = torch.bincount(latents, minlength=width)
    total = torch.zeros(width, dtype=torch.float64).index_add_(0, latents, values64)
    top = torch.zeros(width, dtype=torch.float32).scatter_reduce_(
        0, latents, values.float(), reduce="amax", include_self=True
    )
    n_bins = len(HIST_EDGES) + 1
    bins = torch.bucketize(values64.abs(), HIST_EDGES, right=True)
    hist = torch.bincount(latents * n_bins + bins, minlength=width * n_bins).view(width, n_bins)
    return count, total, top, hist


def open_cache(path: str | Path) -> CacheIndex:
    """Open a native cache folder or a Delphi one (its root, its `latents/` or a hookpoint folder).

    Raises:
        FileNotFoundError: nothing cache-like at `path`.
        CacheError: a manifest that names missing or foreign files.
    """
    root = Path(path)
    if manifests := manifest_files(root):
        return _open_native(root, merge_manifests(manifests))
    return _open_delphi(root)


def manifest_files(root: Path) -> list[Path]:
    """manifest.json and every per-process manifest.rank-R.json under `root`."""
    return sorted(p for p in root.glob("manifest*.json") if p.name.startswith("manifest"))


def merge_manifests(paths: list[Path]) -> dict[str, Any]:
    """One manifest: the shared settings, and the union of the finished parts of every file.

    Raises:
        CacheError: two manifests disagree on the settings (not the same cache).
    """
    merged: dict[str, Any] | None = None
    parts: dict[int, dict[str, Any]] = {}
    for path in paths:
        data = read_json(path)
        if data.get("format_version") != FORMAT_VERSION:
            raise CacheError(
                f"{path}: format_version {data.get('format_version')!r}, expected {FORMAT_VERSION}"
            )
        header = {k: v for k, v in data.items() if k not in ("parts", "n_rows_done", "n_tokens_done")}
        if merged is None:
            merged = header
        elif header != merged:
            diff = sorted(k for k in header.keys() | merged.keys() if header.get(k) != merged.get(k))
            raise CacheError(f"{path}: settings differ from {paths[0]} in {diff}")
        parts.update({p["part"]: p for p in data["parts"]})
    assert merged is not None
    merged["parts"] = [parts[i] for i in sorted(parts)]
    return merged


def _open_native(root: Path, manifest: dict[str, Any]) -> CacheIndex:
    hookpoints = {}
    for name, info in manifest["hookpoints"].items():
        splits = [tuple(s) for s in info["splits"]]
        files = {s: [part_path(root, name, s, p["part"]) for p in manifest["parts"]] for s in splits}
        hookpoints[name] = HookpointIndex(info["d_sae"], splits, files, info.get("sae", {}))
    return CacheIndex(
        root=root,
        kind="native",
        model=manifest["model"],
        ctx_len=manifest["ctx_len"],
        n_rows=manifest["n_rows"],
        keep_bos=manifest["keep_bos"],
        hookpoints=hookpoints,
        manifest=manifest,
        tokens_file=root / TOKENS,
        rows=_covered_rows(manifest["parts"]),
    )


def _covered_rows(parts: list[dict[str, Any]]) -> Tensor:
    ranges = [torch.arange(p["rows"][0], p["rows"][1]) for p in parts]
    return torch.cat(ranges) if ranges else torch.zeros(0, dtype=torch.int64)


def _open_delphi(root: Path) -> CacheIndex:
    folders = _delphi_hookpoint_folders(root)
    if not folders:
        raise FileNotFoundError(
            f"{root}: no manifest.json (native cache) and no <start>_<end>.safetensors files (Delphi cache)"
        )
    hookpoints, config = {}, {}
    for folder in folders:
        files = {}
        for path in sorted(folder.glob("*.safetensors")):
            if m := _DELPHI_FILE.match(path.name):
                files[(int(m[1]), int(m[2]) + 1)] = [path]  # Delphi's end is inclusive
        splits = sorted(files)
        hookpoints[folder.name] = HookpointIndex(splits[-1][1], splits, files)
        if (folder / "config.json").is_file():
            config = read_json(folder / "config.json")
    first = next(iter(hookpoints.values())).files
    tokens_file = next(iter(first.values()))[0]
    tokens_shape = _tensor_shape(tokens_file, "tokens")
    return CacheIndex(
        root=root,
        kind="delphi",
        model=str(config.get("model_name", "")),
        ctx_len=tokens_shape[1],
        n_rows=tokens_shape[0],
        keep_bos=True,  # Delphi caches every position
        hookpoints=hookpoints,
        manifest={"delphi_config": config},
        tokens_file=tokens_file,
        rows=torch.arange(tokens_shape[0]),
    )


def _delphi_hookpoint_folders(root: Path) -> list[Path]:
    for base in (root / "latents", root):
        found = sorted(
            d for d in base.glob("*") if d.is_dir() and any(_DELPHI_FILE.match(p.name) for p in d.iterdir())
        )
        if found:
            return found
    if root.is_dir() and any(_DELPHI_FILE.match(p.name) for p in root.iterdir()):
        return [root]
    return []


def _tensor_shape(path: Path, name: str) -> list[int]:
    try:
        with safe_open(str(path), "pt") as f:
            return list(f.get_slice(name).get_shape())
    except (SafetensorError, OSError, RuntimeError) as err:
        raise CacheError(
            f"{path}: no readable tensor {name!r} ({err}); Delphi splits carry the tokens"
        ) from err

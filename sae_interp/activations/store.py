"""The activation store: residual activations read once from a model, kept on disk, read many times.

One early-stopped forward (`read_resid`) feeds every SAE trained on a layer and, later, the latent
cache: several SAEs and several epochs read the same files instead of running the model again.

Layout of a store folder:

    manifest.json                 what, from where, and which parts are finished (see below)
    tokens.safetensors            `tokens` [n_rows, ctx_len] int64 and `lengths` [n_rows] int64, once
    parts/part-NNNNN.safetensors  `layer_<L>` [rows, n_positions, d_model] per stored layer

Part NNNNN holds rows `manifest["parts"][NNNNN]["rows"]` = [start, end) of `tokens`, positions
`first_position .. ctx_len-1` of each row (position p at index p - first_position). Position 0 (BOS)
is left out by default (CONVENTIONS 3: it carries huge activations on Qwen-family models);
`keep_bos=True` keeps it. In "pad" rows, positions at or beyond `lengths[row]` are stored but are
padding: `real_mask` marks the real ones and `batches` skips the rest.

Crash safety: each part is written under a temporary name and moved into place, and only then
listed in the manifest (also replaced atomically). A killed writer loses at most the part in
flight; `build_store` with the same inputs resumes after the last listed part, and a finished store
(`"complete": true`) is reused as is. A store whose model, provenance, layers, token rows, dtype or
positions differ from the request raises `StoreMismatchError` instead of being mixed or overwritten.

Read API (for SAE training and the latent cache): `ActivationStore(path)`, then `.tokens()`,
`.lengths()`, `.parts`, `.iter_parts(layer)` -> (StorePart, acts) in row order, `.load_rows(layer,
start, end)`, `.real_mask(start, end)`, and `.batches(layer, batch_size=...)` for shuffled training
batches over one or more epochs.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import Tensor

from sae_interp._io import read_json
from sae_interp.activations.shuffle import ShuffleBuffer
from sae_interp.models.loading import LoadedModel
from sae_interp.models.resid import read_resid

__all__ = [
    "MANIFEST_FILENAME",
    "STORE_FORMAT_VERSION",
    "TOKENS_FILENAME",
    "ActivationStore",
    "StoreConfig",
    "StoreMismatchError",
    "StorePart",
    "iter_model_chunks",
]

logger = logging.getLogger(__name__)

STORE_FORMAT_VERSION = 1
MANIFEST_FILENAME = "manifest.json"
TOKENS_FILENAME = "tokens.safetensors"
PARTS_DIRNAME = "parts"
StoreDType = Literal["float32", "float16", "bfloat16"]
_IDENTITY_KEYS = ("model", "provenance", "layers", "d_model", "n_rows", "ctx_len", "tokens_sha256")
_IDENTITY_KEYS += ("dtype", "first_position")


class StoreMismatchError(ValueError):
    """An existing store was built from other inputs than the ones requested."""


@dataclass(frozen=True, kw_only=True)
class StoreConfig:
    """How activations are read and stored."""

    layers: tuple[int, ...]
    """Residual layers to store (input of decoder layer L)."""
    keep_bos: bool = False
    """Keep position 0 (BOS); excluded by default because of its outsized activations."""
    dtype: StoreDType = "float32"
    """On-disk dtype; float16/bfloat16 halve the disk use (training reads them back as float32)."""
    rows_per_part: int = 64
    """Token rows per part file: the unit of atomic writing and of resuming."""
    batch_size: int = 8
    """Rows per forward pass."""

    def __post_init__(self) -> None:
        if not self.layers or any(layer < 0 for layer in self.layers):
            raise ValueError(f"store.layers={self.layers!r}; give one or more layers >= 0")
        if self.dtype not in get_args(StoreDType):
            raise ValueError(f"store.dtype={self.dtype!r}; expected one of {get_args(StoreDType)}")
        for name in ("rows_per_part", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"store.{name} must be > 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class StorePart:
    """One finished part file."""

    index: int
    row_start: int
    """First token row in the part."""
    row_end: int
    """One past the last token row."""
    path: Path


def _tensor_key(layer: int) -> str:
    return f"layer_{layer}"


def _tokens_sha256(tokens: Tensor, lengths: Tensor) -> str:
    digest = hashlib.sha256()
    digest.update(str(tuple(tokens.shape)).encode())
    digest.update(tokens.to(torch.int64).contiguous().numpy().tobytes())
    digest.update(lengths.to(torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()


class ActivationStore:
    """Read access to a store folder (finished or not; `complete` says which)."""

    def __init__(self, path: str | os.PathLike[str]):
        """Open the store at `path`.

        Raises:
            FileNotFoundError: no manifest.json there.
            ValueError: a manifest of another format version.
        """
        self.path = Path(path)
        manifest_path = self.path / MANIFEST_FILENAME
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{self.path} is not an activation store (no {MANIFEST_FILENAME})")
        self.manifest: dict[str, Any] = read_json(manifest_path)
        self._lengths: Tensor | None = None
        if self.manifest.get("format_version") != STORE_FORMAT_VERSION:
            raise ValueError(
                f"{manifest_path}: format_version {self.manifest.get('format_version')!r}, expected "
                f"{STORE_FORMAT_VERSION}; delete the folder to rebuild it"
            )

    @property
    def complete(self) -> bool:
        return bool(self.manifest["complete"])

    @property
    def layers(self) -> list[int]:
        return list(self.manifest["layers"])

    @property
    def d_model(self) -> int:
        return int(self.manifest["d_model"])

    @property
    def n_rows(self) -> int:
        return int(self.manifest["n_rows"])

    @property
    def ctx_len(self) -> int:
        return int(self.manifest["ctx_len"])

    @property
    def first_position(self) -> int:
        """0 when BOS was kept, else 1: stored position index i is token position i + first_position."""
        return int(self.manifest["first_position"])

    @property
    def parts(self) -> list[StorePart]:
        return [
            StorePart(i, p["rows"][0], p["rows"][1], self.path / p["file"])
            for i, p in enumerate(self.manifest["parts"])
        ]

    def tokens(self) -> Tensor:
        """[n_rows, ctx_len] int64 token ids."""
        return load_file(self.path / TOKENS_FILENAME)["tokens"]

    def lengths(self) -> Tensor:
        """[n_rows] int64 real tokens per row (BOS included)."""
        if self._lengths is None:  # read once: `batches` asks for it per part
            self._lengths = load_file(self.path / TOKENS_FILENAME)["lengths"]
        return self._lengths

    def real_mask(self, start: int, end: int) -> Tensor:
        """[end - start, n_positions] bool: stored positions of rows start..end-1 that are real tokens."""
        positions = torch.arange(self.first_position, self.ctx_len)
        return positions[None, :] < self.lengths()[start:end, None]

    def n_tokens(self) -> int:
        """Real stored positions over all rows (what one training epoch covers)."""
        return int(self.real_mask(0, self.n_rows).sum())

    def _check_layer(self, layer: int) -> None:
        if layer not in self.layers:
            raise ValueError(f"layer {layer} is not in the store at {self.path} (layers {self.layers})")

    def iter_parts(
        self, layer: int, parts: Sequence[StorePart] | None = None
    ) -> Iterator[tuple[StorePart, Tensor]]:
        """Yield (part, acts [rows, n_positions, d_model] in the stored dtype), in row order by default."""
        self._check_layer(layer)
        for part in self.parts if parts is None else parts:
            with safe_open(part.path, framework="pt") as f:
                yield part, f.get_tensor(_tensor_key(layer))

    def load_rows(self, layer: int, start: int, end: int) -> Tensor:
        """Activations of rows start..end-1: [end - start, n_positions, d_model] in the stored dtype."""
        self._check_layer(layer)
        if not 0 <= start <= end <= self.n_rows:
            raise ValueError(f"rows [{start}, {end}) are outside 0..{self.n_rows}")
        chunks = [
            acts[max(start, p.row_start) - p.row_start : min(end, p.row_end) - p.row_start]
            for p, acts in self.iter_parts(
                layer, [p for p in self.parts if p.row_start < end and p.row_end > start]
            )
        ]
        if sum(c.shape[0] for c in chunks) != end - start:
            raise ValueError(f"rows [{start}, {end}) are not all written yet in {self.path}")
        return torch.cat(chunks)

    def batches(
        self,
        layer: int,
        *,
        batch_size: int,
        epochs: int = 1,
        seed: int = 0,
        buffer_rows: int | None = None,
        drop_last: bool = True,
    ) -> Iterator[Tensor]:
        """Shuffled training batches [batch_size, d_model] float32 of the real stored positions.

        Each epoch visits the parts in a fresh random order and passes them through a `ShuffleBuffer`
        of `buffer_rows` (default: 32 batches), so memory stays at the buffer plus one part.
        """
        if not self.complete:
            raise ValueError(f"{self.path} is not finished; run build_store again to complete it")
        capacity = buffer_rows or 32 * batch_size
        for epoch in range(epochs):
            order = torch.randperm(
                len(self.parts), generator=torch.Generator().manual_seed(seed * 7919 + epoch)
            )
            chunks = (
                acts[self.real_mask(part.row_start, part.row_end)].float()
                for part, acts in self.iter_parts(layer, [self.parts[i] for i in order.tolist()])
            )
            buffer = ShuffleBuffer(batch_size=batch_size, capacity=capacity, seed=seed * 7919 + epoch)
            yield from buffer.batches(chunks)


def iter_model_chunks(
    model: LoadedModel,
    tokens: Tensor,
    layer: int,
    *,
    lengths: Tensor | None = None,
    batch_size: int = 8,
    keep_bos: bool = False,
) -> Iterator[Tensor]:
    """Stream real-token activations straight from the model, without a store.

    Args:
        tokens: [n_rows, ctx_len]; lengths: [n_rows] real tokens per row (default: all).

    Yields:
        [n, d_model] float32 chunks, one per forward batch, in row order (feed them to a
        `ShuffleBuffer` for training).
    """
    first = 0 if keep_bos else 1
    lengths = lengths if lengths is not None else torch.full((tokens.shape[0],), tokens.shape[1])
    positions = torch.arange(first, tokens.shape[1])
    for batch in read_resid(model, layer, tokens, batch_size=batch_size):
        rows = slice(batch.start, batch.start + batch.acts[layer].shape[0])
        mask = positions[None, :] < lengths[rows, None]
        yield batch.acts[layer][:, first:].float().cpu()[mask]

"""Documents -> fixed-length rows of token ids, streamed so a large corpus never sits in memory.

Rules, chosen so that every row looks the same to the model whatever the source:
- Documents never carry a BOS of their own: texts are encoded with `add_special_tokens=False`
  and leading BOS ids (a chat template that writes `{{ bos_token }}`, or a literal "<s>") are
  stripped. BOS is then put at position 0 of every row when `bos=True` and the tokenizer has one,
  so it is there exactly once per row.
- Conversations are rendered with the tokenizer's chat template (the plain template for base
  models, via `ensure_chat_template`), then treated like texts.
- "pack": documents are concatenated, each followed by EOS, and cut into full rows; the final
  partial row is dropped, every other token is kept in order. "pad": one document per row,
  truncated to fit and padded; `lengths` says where the padding starts.
Order is the source order; nothing is shuffled, so the same inputs give the same rows.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, get_args

import torch

from sae_interp.data._files import Document
from sae_interp.data.registry import Source, iter_documents, source_name
from sae_interp.models.templates import ensure_chat_template

__all__ = ["PackMode", "TokenRows", "TokenizeConfig", "iter_token_rows", "tokenize_rows"]

logger = logging.getLogger(__name__)

PackMode = Literal["pack", "pad"]
_Rows = Iterator[tuple[int, list[int]]]
"""(documents read so far, token ids) pairs, one per encoded document or row."""
_ENCODE_CHUNK = 128
"""Documents per tokenizer call: fast tokenizers encode a batch in parallel."""


@dataclass(frozen=True, kw_only=True)
class TokenizeConfig:
    """How documents become rows."""

    ctx_len: int
    """Tokens per row, BOS included."""
    bos: bool = True
    """Put the tokenizer's BOS at position 0 of every row (ignored if the tokenizer has none)."""
    mode: PackMode = "pack"
    """pack: concatenate documents with EOS between them and cut into full rows; pad: one document
    per row, truncated or padded to ctx_len."""
    batch_rows: int = 64
    """Rows per batch yielded by iter_token_rows."""

    def __post_init__(self) -> None:
        if self.ctx_len < 2:
            raise ValueError(f"TokenizeConfig.ctx_len must be >= 2 (BOS plus a token), got {self.ctx_len}")
        if self.mode not in get_args(PackMode):
            raise ValueError(f"TokenizeConfig.mode={self.mode!r}; expected one of {get_args(PackMode)}")
        if self.batch_rows < 1:
            raise ValueError(f"TokenizeConfig.batch_rows must be >= 1, got {self.batch_rows}")


class TokenRows(NamedTuple):
    """A block of rows and where it came from."""

    tokens: torch.Tensor
    """[n_rows, ctx_len] int64 token ids."""
    lengths: torch.Tensor
    """[n_rows] int64: real tokens per row, BOS included; later positions are padding ("pad" mode)."""
    n_docs: int
    """Documents read from the source to produce every row up to and including these."""
    source: str
    """The data set name or file path ("<documents>" for an in-memory iterable)."""


def iter_token_rows(
    source: Source | Iterable[Document], tokenizer: Any, cfg: TokenizeConfig
) -> Iterator[TokenRows]:
    """Stream rows in batches of `cfg.batch_rows` (the last batch may be smaller).

    Args:
        source: a data set name, a user file, or an iterable of documents (texts or message lists).
        tokenizer: a Hugging Face tokenizer; one without a chat template gets the plain one when
            the source holds conversations.
        cfg: row length, BOS, packing.

    Yields:
        TokenRows with tokens [batch_rows, ctx_len].
    """
    rows = _row_stream(source, tokenizer, cfg)
    label = _label(source)
    while chunk := list(itertools.islice(rows, cfg.batch_rows)):
        yield _to_rows(chunk, tokenizer, cfg, label)


def tokenize_rows(
    source: Source | Iterable[Document],
    tokenizer: Any,
    cfg: TokenizeConfig,
    *,
    n_rows: int | None = None,
    n_tokens: int | None = None,
) -> TokenRows:
    """All rows at once, or the first rows within a budget; reads only as much of the source as needed.

    Args:
        source, tokenizer, cfg: as for iter_token_rows.
        n_rows: stop after this many rows.
        n_tokens: stop after ceil(n_tokens / ctx_len) rows. Give at most one of the two budgets.

    Returns:
        TokenRows with tokens [n_rows, ctx_len]; fewer rows than the budget (logged as a warning)
        when the source runs out.

    Raises:
        ValueError: both budgets given, a budget < 1, or a source that yields no row.
    """
    if n_rows is not None and n_tokens is not None:
        raise ValueError(f"give n_rows or n_tokens, not both (got n_rows={n_rows}, n_tokens={n_tokens})")
    limit = n_rows if n_tokens is None else math.ceil(n_tokens / cfg.ctx_len)
    if limit is not None and limit < 1:
        raise ValueError(f"the row budget must be >= 1, got n_rows={n_rows}, n_tokens={n_tokens}")
    chunk = list(itertools.islice(_row_stream(source, tokenizer, cfg), limit))
    label = _label(source)
    if not chunk:
        raise ValueError(f"{label}: no rows; in 'pack' mode the documents must hold at least ctx_len tokens")
    if limit is not None and len(chunk) < limit:
        logger.warning("%s ran out after %d of the %d rows asked for", label, len(chunk), limit)
    return _to_rows(chunk, tokenizer, cfg, label)


def _label(source: Source | Iterable[Document]) -> str:
    return source_name(source) if isinstance(source, str | os.PathLike) else "<documents>"


def _row_stream(source: Source | Iterable[Document], tokenizer: Any, cfg: TokenizeConfig) -> _Rows:
    """(documents read so far, row ids without BOS) for every row, in order."""
    docs = iter_documents(source) if isinstance(source, str | os.PathLike) else iter(source)
    encoded = _encode(docs, tokenizer)
    capacity = cfg.ctx_len - (_bos_id(tokenizer, cfg) is not None)
    if cfg.mode == "pad":
        return ((n_read, ids[:capacity]) for n_read, ids in encoded)
    separator = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.bos_token_id
    if separator is None:
        raise ValueError("the tokenizer has neither EOS nor BOS to separate packed documents; use mode='pad'")
    return _pack(encoded, capacity, separator)


def _bos_id(tokenizer: Any, cfg: TokenizeConfig) -> int | None:
    return tokenizer.bos_token_id if cfg.bos else None


def _encode(docs: Iterator[Document], tokenizer: Any) -> _Rows:
    """(documents read so far, ids) for each document that has tokens; leading BOS ids removed."""
    n_read = 0
    while chunk := list(itertools.islice(docs, _ENCODE_CHUNK)):
        texts = [doc if isinstance(doc, str) else _render_chat(doc, tokenizer) for doc in chunk]
        for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
            n_read += 1
            start = 0
            while start < len(ids) and ids[start] == tokenizer.bos_token_id:
                start += 1
            if start < len(ids):
                yield n_read, list(ids[start:])


def _render_chat(messages: list[dict[str, str]], tokenizer: Any) -> str:
    ensure_chat_template(tokenizer)
    return tokenizer.apply_chat_template(messages, tokenize=False)


def _pack(encoded: _Rows, capacity: int, separator: int) -> _Rows:
    """Concatenate documents, each followed by `separator`, into full rows of `capacity` ids."""
    buffer: list[int] = []
    for n_read, ids in encoded:
        buffer.extend(ids)
        buffer.append(separator)
        n_full = len(buffer) // capacity
        for r in range(n_full):
            yield n_read, buffer[r * capacity : (r + 1) * capacity]
        del buffer[: n_full * capacity]


def _to_rows(
    chunk: list[tuple[int, list[int]]], tokenizer: Any, cfg: TokenizeConfig, label: str
) -> TokenRows:
    """Stack rows into a tensor, adding BOS and padding."""
    bos = _bos_id(tokenizer, cfg)
    offset = int(bos is not None)
    # Padding positions are marked by `lengths`, so the fill value only has to be a valid id.
    pad = next((i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None), 0)
    tokens = torch.full((len(chunk), cfg.ctx_len), pad, dtype=torch.long)
    lengths = torch.empty(len(chunk), dtype=torch.long)
    if bos is not None:
        tokens[:, 0] = bos
    for i, (_, ids) in enumerate(chunk):
        tokens[i, offset : offset + len(ids)] = torch.tensor(ids, dtype=torch.long)
        lengths[i] = offset + len(ids)
    return TokenRows(tokens=tokens, lengths=lengths, n_docs=chunk[-1][0], source=label)

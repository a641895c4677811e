"""Named data sets and user files behind one small API.

`source` is everywhere either a registered name (`DATASETS`) or a path to the user's own file
(.txt, .jsonl, .json or a `datasets` save_to_disk folder). Instructions get a fixed 80/20
train/test split computed from each text's salted hash, so the split is the same on every machine,
does not depend on a random generator's implementation, and applies to user files too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast, get_args

from sae_interp.data._files import Conversation, Document, read_file
from sae_interp.data._sharegpt import iter_chat, load_harmless
from sae_interp.data._sources import read_advbench, read_wiki_extracts
from sae_interp.data.cards import DATA_CARDS, DataCard

__all__ = [
    "DATASETS",
    "TEST_FRACTION",
    "Dataset",
    "Source",
    "Split",
    "iter_conversations",
    "iter_documents",
    "iter_texts",
    "load_instructions",
    "source_name",
]

Split = Literal["train", "test", "all"]
Source = str | os.PathLike[str]
TEST_FRACTION = 0.2
_SPLIT_SALT = "sae_interp/split/v1"


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """A named data set: its card and how to read its documents."""

    card: DataCard
    """Provenance, licence, selection and size."""
    read: Callable[[], Iterator[Document]]
    """Yields the documents in a fixed order (strings, or message lists for conversations)."""


DATASETS: dict[str, Dataset] = {
    "harmful": Dataset(card=DATA_CARDS["harmful"], read=lambda: iter(read_advbench())),
    "harmless": Dataset(card=DATA_CARDS["harmless"], read=lambda: iter(load_harmless())),
    "chat": Dataset(card=DATA_CARDS["chat"], read=iter_chat),
    "web": Dataset(card=DATA_CARDS["web"], read=read_wiki_extracts),
}
"""Registered data sets by name: harmful, harmless, chat, web."""


def source_name(source: Source) -> str:
    """A short provenance label: the registered name or the file path."""
    return os.fspath(source)


def iter_documents(source: Source) -> Iterator[Document]:
    """Documents of a named set or user file, in a fixed order.

    Raises:
        FileNotFoundError: `source` is neither a registered name nor an existing path.
        DataFileError: the user file cannot be read as documents (see `sae_interp.data._files`).
    """
    if isinstance(source, str) and source in DATASETS:
        return DATASETS[source].read()
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"{os.fspath(source)!r} is neither a data set name ({', '.join(DATASETS)}) nor an existing"
            " file; pass a name, or a .txt/.jsonl/.json file or a datasets folder saved with save_to_disk"
        )
    return read_file(path)


def iter_texts(source: Source) -> Iterator[str]:
    """Plain-text documents of `source` (instructions or prose).

    Raises:
        FileNotFoundError: at once, for an unknown name or missing path.
        TypeError: while iterating, when `source` holds conversations.
    """
    wrong = f"{source_name(source)} holds conversations, not texts; use iter_conversations"
    return cast(Iterator[str], _only(iter_documents(source), want_text=True, wrong=wrong))


def iter_conversations(source: Source) -> Iterator[Conversation]:
    """Conversations of `source`, each a list of {"role", "content"} messages.

    Raises:
        FileNotFoundError: at once, for an unknown name or missing path.
        TypeError: while iterating, when `source` holds plain texts.
    """
    wrong = f"{source_name(source)} holds plain texts, not conversations; use iter_texts or load_instructions"
    return cast(Iterator[Conversation], _only(iter_documents(source), want_text=False, wrong=wrong))


def _only(docs: Iterator[Document], *, want_text: bool, wrong: str) -> Iterator[Document]:
    """Pass documents through, raising TypeError(wrong) at the first one of the other kind."""
    for doc in docs:
        if isinstance(doc, str) != want_text:
            raise TypeError(wrong)
        yield doc


def load_instructions(source: Source, split: Split = "all") -> list[str]:
    """Instructions of `source` for one split, in source order.

    Args:
        source: "harmful", "harmless", or a user file of texts.
        split: "train" (80%), "test" (20%) or "all". The split ranks items by a salted sha256 of
            their text; duplicates of one text are separate items and may land on both sides.

    Raises:
        ValueError: unknown split.
        TypeError: `source` holds conversations.
    """
    if split not in get_args(Split):
        raise ValueError(f"split={split!r}; expected one of {get_args(Split)}")
    texts = list(iter_texts(source))
    if split == "all":
        return texts
    ranked = sorted(range(len(texts)), key=lambda i: _split_rank(texts[i]))
    test = set(ranked[: round(len(texts) * TEST_FRACTION)])
    return [text for i, text in enumerate(texts) if (i in test) == (split == "test")]


def _split_rank(text: str) -> bytes:
    """Salted sha256: a fixed pseudo-random order that no library upgrade can change."""
    return hashlib.sha256(f"{_SPLIT_SALT}\0{text}".encode()).digest()

"""Documents from the user's own files: .txt, .jsonl, .json and Hugging Face `save_to_disk` folders.

A document is either a text (`str`) or a conversation (a list of `{"role", "content"}` messages).
Every error names the file (and line or item) and says what the file should hold, so a typo in a
field name fails at once instead of producing empty rows later. Empty texts are skipped; a file
that yields no document at all is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

__all__ = ["FILE_FORMATS", "ROLES", "Conversation", "DataFileError", "Document", "as_document", "read_file"]

logger = logging.getLogger(__name__)

Conversation = list[dict[str, str]]
Document = str | Conversation
ROLES = frozenset({"system", "user", "assistant"})

_EXPECTED = (
    'each item must be a string, {"text": "..."} or {"messages": [{"role": "user", "content": "..."}, ...]}'
)


class DataFileError(ValueError):
    """A user data file that cannot be read as documents; the message says which and how to fix it."""


def as_document(item: Any, where: str) -> Document | None:
    """Validate one record and return its document (None for an empty text, which is skipped).

    Args:
        item: a string, or a mapping with "text" (string) or "messages" (list of messages).
        where: file and position, for the error message.

    Raises:
        DataFileError: the record has neither field or a field has the wrong type.
    """
    if isinstance(item, dict):
        if "text" in item:
            item = item["text"]
        elif "messages" in item:
            return _as_conversation(item["messages"], where)
        else:
            raise DataFileError(f"{where}: no 'text' or 'messages' field (found {sorted(item)}); {_EXPECTED}")
    if not isinstance(item, str):
        raise DataFileError(f"{where}: got {type(item).__name__}; {_EXPECTED}")
    return item if item.strip() else None


def _as_conversation(messages: Any, where: str) -> Conversation:
    """Check a message list: non-empty, each with a known role and string content."""
    if not isinstance(messages, list) or not messages:
        raise DataFileError(f"{where}: 'messages' must be a non-empty list; {_EXPECTED}")
    for i, message in enumerate(messages):
        ok = isinstance(message, dict) and message.get("role") in ROLES
        if not ok or not isinstance(message.get("content"), str):
            raise DataFileError(
                f"{where}: message {i} is {message!r}; each message needs 'role' "
                f"(one of {sorted(ROLES)}) and string 'content'"
            )
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _read_txt(path: Path) -> Iterator[Any]:
    """One document per line; blank lines are skipped (use .jsonl for multi-line documents)."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            yield line.rstrip("\n")


def _read_jsonl(path: Path) -> Iterator[Any]:
    """One JSON record per line; a blank line reads as an empty text (skipped), keeping line numbers."""
    with path.open("rb") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                yield ""
                continue
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError as err:
                raise DataFileError(f"{path}:{lineno}: not valid JSON ({err}); {_EXPECTED}") from err


def _read_json(path: Path) -> Iterator[Any]:
    """A JSON list of records."""
    try:
        records = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as err:
        raise DataFileError(f"{path}: not valid JSON ({err}); the file must hold a JSON list") from err
    if not isinstance(records, list):
        raise DataFileError(f"{path}: holds a {type(records).__name__}, not a list; {_EXPECTED}")
    yield from records


def _read_hf_folder(path: Path) -> Iterator[Any]:
    """Rows of a `datasets` folder written by save_to_disk (its "train" split for a DatasetDict)."""
    try:
        import datasets  # pyright: ignore[reportMissingImports]  # optional extra, only this format needs it
    except ImportError as err:
        raise ImportError(
            f"{path} is a Hugging Face datasets folder; reading it needs: pip install datasets"
        ) from err
    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded:
            raise DataFileError(
                f"{path}: a DatasetDict without a 'train' split ({sorted(loaded)}); save that split alone"
            )
        loaded = loaded["train"]
    columns = [c for c in ("text", "messages") if c in loaded.column_names]
    if not columns:
        raise DataFileError(f"{path}: no 'text' or 'messages' column (found {loaded.column_names})")
    yield from loaded.select_columns(columns[:1])


FILE_FORMATS: dict[str, Callable[[Path], Iterator[Any]]] = {
    ".txt": _read_txt,
    ".jsonl": _read_jsonl,
    ".json": _read_json,
}
"""File suffix -> record reader; folders are read as Hugging Face `save_to_disk` datasets."""
_HF_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


def read_file(path: Path) -> Iterator[Document]:
    """Documents of one user file or datasets folder, in file order.

    Raises:
        DataFileError: unknown suffix, folder that is not a datasets folder, a bad record,
            or no document at all.
    """
    if path.is_dir():
        if not any((path / marker).is_file() for marker in _HF_MARKERS):
            raise DataFileError(f"{path}: a folder, but not one written by datasets' save_to_disk")
        reader = _read_hf_folder
    elif path.suffix.lower() in FILE_FORMATS:
        reader = FILE_FORMATS[path.suffix.lower()]
    else:
        raise DataFileError(
            f"{path}: unsupported file type; use one of {sorted(FILE_FORMATS)} or a datasets folder"
        )
    count = 0
    for index, item in enumerate(reader(path), start=1):
        # path:N is the line of a .txt/.jsonl file, the 1-based element of a .json list.
        doc = as_document(item, f"{path}:{index}")
        if doc is not None:
            count += 1
            yield doc
    if count == 0:
        raise DataFileError(f"{path} holds no documents; {_EXPECTED}")

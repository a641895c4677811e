"""The `harmless` and `chat` sets: extracted from ShareGPT once, then read from the user cache.

ShareGPT has no stated licence, so none of its text is vendored. The first call parses the 125 MB
packaged JSON (tolerating its truncated end), selects the harmless prompts and writes both sets into
one folder under `user_cache_dir() / "data"`, built atomically so a killed run leaves nothing that
looks finished. The folder name carries the package version, SELECTION_VERSION and the AdvBench
file's hash, so changing any of them makes a fresh folder instead of reusing a stale one.

`chat` leaves out every conversation that gave a harmless prompt (all of its parts) and every
conversation with a user turn equal to one: SAEs trained on `chat` never saw the harmless set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from sae_interp._io import atomic_directory, read_json, user_cache_dir
from sae_interp.data._harmless import (
    SELECTION_VERSION,
    Candidate,
    first_turn_candidates,
    match_lengths,
    normalise,
)
from sae_interp.data._sources import (
    ADVBENCH_FILE,
    SHAREGPT_DIST,
    distribution_version,
    file_sha256,
    iter_sharegpt_records,
    read_advbench,
)

__all__ = ["cache_dir", "ensure_cache", "iter_chat", "load_harmless", "to_messages"]

logger = logging.getLogger(__name__)

HARMLESS_FILE = "harmless.json"
CHAT_FILE = "chat.jsonl"
META_FILE = "meta.json"
MIN_CHAT_MESSAGES = 2
"""A chat conversation needs at least a request and a reply."""

_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "assistant": "assistant",
}
"""ShareGPT speaker -> chat role; anything else (41 "system" turns) is dropped."""


def to_messages(turns: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """ShareGPT turns -> strictly alternating user/assistant messages starting with the user.

    Strict alternation is what the strictest chat templates (Gemma's) accept. Empty and unknown
    turns are dropped, leading assistant turns (parts that start mid-conversation) are dropped,
    and consecutive turns of one role are joined with a blank line.
    """
    messages: list[dict[str, str]] = []
    for turn in turns:
        role = _ROLES.get(turn.get("from", ""))
        content = (turn.get("value") or "").strip()
        if role is None or not content or (not messages and role != "user"):
            continue
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] += "\n\n" + content
        else:
            messages.append({"role": role, "content": content})
    return messages


def cache_dir() -> Path:
    """The folder holding this version's extracted sets (it may not exist yet)."""
    advbench = file_sha256(ADVBENCH_FILE)[:8]
    key = f"sharegpt-{distribution_version(SHAREGPT_DIST)}-{SELECTION_VERSION}-{advbench}"
    return user_cache_dir() / "data" / key


def ensure_cache() -> Path:
    """Build the cached sets on first use and return their folder."""
    target = cache_dir()
    if target.is_dir():
        return target
    logger.info("first use: extracting harmless prompts and chat conversations from ShareGPT")
    start = time.perf_counter()
    try:
        with atomic_directory(target) as tmp:
            _build(tmp, start)
    except OSError:
        # A concurrent process may have moved its finished folder into place first.
        if not target.is_dir():
            raise
        logger.info("another process built %s first; using it", target)
    logger.info("ShareGPT extraction took %.1f s -> %s", time.perf_counter() - start, target)
    return target


def load_harmless() -> list[str]:
    """The selected harmless prompts, in the fixed pseudo-random order of the selection."""
    payload = read_json(ensure_cache() / HARMLESS_FILE)
    return [item["text"] for item in payload["prompts"]]


def iter_chat() -> Iterator[list[dict[str, str]]]:
    """Stream the chat conversations from the cache, one JSON line at a time."""
    with (ensure_cache() / CHAT_FILE).open("rb") as f:
        for line in f:
            yield orjson.loads(line)["messages"]


def _build(folder: Path, start: float) -> None:
    """Parse ShareGPT once and write harmless.json, chat.jsonl and meta.json into `folder`."""
    records = list(iter_sharegpt_records())
    harmful = read_advbench()
    lengths = [len(goal.split()) for goal in harmful]
    openings = [
        (record["id"], turns[0].get("value") or "")
        for record in records
        if record["id"].endswith("_0")
        and (turns := record.get("conversations"))
        and turns[0].get("from") == "human"
    ]
    candidates = first_turn_candidates(openings, harmful, min_words=min(lengths), max_words=max(lengths))
    chosen = match_lengths(candidates, harmful)
    prompts = [{"id": c.record_id, "text": c.text} for c in chosen]
    (folder / HARMLESS_FILE).write_bytes(orjson.dumps({"version": SELECTION_VERSION, "prompts": prompts}))
    n_chat = _write_chat(folder / CHAT_FILE, records, chosen)
    meta = {
        "sharegpt_version": distribution_version(SHAREGPT_DIST),
        "selection_version": SELECTION_VERSION,
        "records": len(records),
        "harmless_candidates": len(candidates),
        "harmless": len(chosen),
        "chat": n_chat,
        "build_seconds": round(time.perf_counter() - start, 2),
    }
    (folder / META_FILE).write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))


def _write_chat(path: Path, records: list[dict[str, Any]], harmless: list[Candidate]) -> int:
    """Write every usable conversation not tied to a harmless prompt; return how many."""
    excluded_ids = {c.record_id.rsplit("_", 1)[0] for c in harmless}
    excluded_texts = {normalise(c.text) for c in harmless}
    count = 0
    with path.open("wb") as f:
        for record in records:
            if record["id"].rsplit("_", 1)[0] in excluded_ids:
                continue
            messages = to_messages(record.get("conversations") or [])
            if len(messages) < MIN_CHAT_MESSAGES or any(
                m["role"] == "user" and normalise(m["content"]) in excluded_texts for m in messages
            ):
                continue
            f.write(orjson.dumps({"id": record["id"], "messages": messages}) + b"\n")
            count += 1
    return count

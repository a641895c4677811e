"""The run folder the pipeline writes: config, summary, failures and one JSON file per item.

Layout (CONVENTIONS section 8):

    <run>/config.json       the resolved config, secrets removed
    <run>/summary.json      counts, timings, token usage, per-stage means of numeric metrics
    <run>/failures.jsonl    one `Failed` record per line; the last line for a key wins
    <run>/items/<key>.json  one file per finished item (or wherever `item_path` puts it)

Every JSON object carries "schema_version". Item files are written atomically (temporary sibling,
then `os.replace`), so an item file that exists is complete: a killed run leaves only finished items
and `.tmp-*` leftovers, which the next run removes. `failures.jsonl` is appended line by line while
a run goes (so a kill keeps what it recorded) and compacted at the start and end of every run:
duplicates collapse to the newest record, and keys that have since finished drop out.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from sae_interp._io import TMP_PREFIX, atomic_write_bytes, atomic_write_json

__all__ = ["SCHEMA_VERSION", "Failed", "RunFolder", "RunFolderMismatch", "redact"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
FAILURES_FILE = "failures.jsonl"
ITEMS_DIR = "items"
_RUN_FILES = {CONFIG_FILE, SUMMARY_FILE}

# Field names whose values are credentials. `*_env` fields hold the NAME of an environment variable
# (e.g. ClientConfig.api_key_env), which is safe to record and useful for reproducing a run.
_SECRET_NAME = re.compile(r"(api_?key|token|secret|password|authorization)", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Failed:
    """An item that did not finish: which stage failed and why."""

    key: str
    stage: str
    """The failing stage's name; inside a `Pipe`, "<pipe>/<stage>"."""
    error: str
    """"TypeName: message": enough to grep for and to decide whether to retry."""


def redact(obj: Any) -> Any:
    """A JSON-ready copy of `obj` (dataclasses become dicts) without values of secret-named fields."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {
            str(k): redact(v)
            for k, v in obj.items()
            if not (_SECRET_NAME.search(str(k)) and not str(k).endswith("_env"))
        }
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def default_item_path(key: str) -> str:
    """`items/<key>.json`; a "/" in the key makes subfolders."""
    return f"{ITEMS_DIR}/{key}.json"


class RunFolderMismatch(ValueError):
    """A run folder holds results of a run with another config: resuming would mix the two."""


class RunFolder:
    """Reads and writes one run folder; see the module docstring for the layout."""

    def __init__(self, path: str | os.PathLike[str], *, item_path: Callable[[str], str] = default_item_path):
        """Args:
        path: the run folder (created when missing).
        item_path: key -> path of the item's JSON file, relative to `path`.
        """
        self.path = Path(path)
        self._item_path = item_path

    def item_file(self, key: str) -> Path:
        """Where the item `key` is written.

        Raises:
            ValueError: the path function leaves the run folder (absolute, "..", empty key).
        """
        rel = Path(self._item_path(key))
        if not key or rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"item key {key!r} maps to {str(rel)!r}, which is outside the run folder")
        return self.path / rel

    def is_complete(self, key: str) -> bool:
        """Whether `key` has a finished item file of this schema version."""
        file = self.item_file(key)
        if not file.is_file():
            return False
        try:
            data = orjson.loads(file.read_bytes())
        except orjson.JSONDecodeError:
            logger.warning("%s is not valid JSON; the item will be redone", file)
            return False
        return isinstance(data, dict) and data.get("schema_version") == SCHEMA_VERSION and "key" in data

    def write_item(self, key: str, payload: Mapping[str, Any]) -> None:
        """Atomically write `{"schema_version", "key", **payload}` for `key`."""
        atomic_write_json(self.item_file(key), {"schema_version": SCHEMA_VERSION, "key": key, **payload})

    def write_config(self, config: Any) -> None:
        """Write config.json: `config` (dataclass or mapping) with secret-named fields removed."""
        atomic_write_json(self.path / CONFIG_FILE, {"schema_version": SCHEMA_VERSION, **redact(config)})

    def check_config(self, config: Mapping[str, Any]) -> None:
        """Refuse to resume a folder whose items were made with another config.

        Raises:
            RunFolderMismatch: config.json records another config and item files exist (an empty
                folder, or one without a recorded config, is fine).
        """
        file = self.path / CONFIG_FILE
        if not file.is_file() or not any(f for f in self.path.rglob("*.json") if f.name not in _RUN_FILES):
            return
        recorded = orjson.loads(file.read_bytes())
        new = orjson.loads(orjson.dumps(redact(config)))
        if "pipeline" not in recorded:
            return
        # What shapes results: the stages and the run's config (not e.g. how many run at once).
        old_stages, new_stages = recorded["pipeline"].get("stages"), new["pipeline"].get("stages")
        old_cfg, new_cfg = recorded.get("config") or {}, new.get("config") or {}
        if old_stages != new_stages or old_cfg != new_cfg:
            keys = set(old_cfg) | set(new_cfg) if isinstance(new_cfg, dict) else set()
            changed = sorted(k for k in keys if old_cfg.get(k) != new_cfg.get(k)) or ["stages"]
            raise RunFolderMismatch(
                f"{self.path} holds results made with another config (differs in: {', '.join(changed)}); "
                "use another run folder, or delete this one to start over"
            )

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        atomic_write_json(self.path / SUMMARY_FILE, {"schema_version": SCHEMA_VERSION, **summary})

    def append_failure(self, failed: Failed) -> None:
        """Append one line to failures.jsonl and flush it to disk (a kill keeps it)."""
        self.path.mkdir(parents=True, exist_ok=True)
        line = orjson.dumps({"schema_version": SCHEMA_VERSION, **dataclasses.asdict(failed)})
        with (self.path / FAILURES_FILE).open("ab") as f:
            f.write(line + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def failures(self) -> list[Failed]:
        """The recorded failures, newest record per key, in first-seen order (torn lines skipped)."""
        file = self.path / FAILURES_FILE
        if not file.is_file():
            return []
        latest: dict[str, Failed] = {}
        for line in file.read_bytes().splitlines():
            try:
                raw = orjson.loads(line)
                latest[raw["key"]] = Failed(raw["key"], raw["stage"], raw["error"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                logger.warning("skipping a torn line in %s", file)
        return list(latest.values())

    def prepare(self) -> None:
        """Get the folder ready for a (re)run: remove temporary leftovers, compact failures."""
        self.path.mkdir(parents=True, exist_ok=True)
        for stale in self.path.rglob(f"{TMP_PREFIX}*"):
            if stale.is_file():
                stale.unlink(missing_ok=True)
        self.compact_failures()

    def compact_failures(self) -> None:
        """Rewrite failures.jsonl: newest record per key, only for keys still without an item file."""
        if not (self.path / FAILURES_FILE).is_file():
            return
        kept = [f for f in self.failures() if not self.is_complete(f.key)]
        lines = [orjson.dumps({"schema_version": SCHEMA_VERSION, **dataclasses.asdict(f)}) for f in kept]
        atomic_write_bytes(self.path / FAILURES_FILE, b"".join(line + b"\n" for line in lines))

"""Atomic file and folder writes, and the user cache directory.

Every long-running step of sae_interp (model conversion, activation and latent caches, explanation
runs) must never leave a half-written file that a later run mistakes for a finished one. All of
them write through these helpers: data goes to a temporary sibling first and is moved into place
with `os.replace`, which is atomic on POSIX file systems when source and target share a folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "atomic_directory",
    "atomic_write_bytes",
    "atomic_write_json",
    "read_json",
    "user_cache_dir",
]

CACHE_ENV = "SAE_INTERP_CACHE"
TMP_PREFIX = ".tmp-"


def user_cache_dir() -> Path:
    """The folder for converted models and derived data: `$SAE_INTERP_CACHE`, else ~/.cache/sae_interp.

    Never the repository: conversions are large and machine-specific.
    """
    raw = os.environ.get(CACHE_ENV)
    root = Path(raw).expanduser() if raw else Path.home() / ".cache" / "sae_interp"
    root.mkdir(parents=True, exist_ok=True)
    return root


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the complete new one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + target.name + ".", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write `obj` as indented JSON (orjson: numpy arrays and dataclasses allowed)."""
    opts = orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
    atomic_write_bytes(path, orjson.dumps(obj, option=opts))


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file, naming the file in the error when it is not valid JSON."""
    raw = Path(path).read_bytes()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete it to have it rebuilt") from err


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a folder under a temporary name and move it to `final` only if the block succeeds.

    A killed process leaves only a `.tmp-*` sibling, which never loads as `final`; stale ones
    from earlier crashes are removed the next time the same folder is built.

    Yields:
        The temporary folder to fill.

    Raises:
        FileExistsError: `final` appeared while we were building it (another process won).
    """
    target = Path(final)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f"{TMP_PREFIX}{target.name}.*"):
        if _owner_is_dead(stale):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{target.name}.{os.getpid()}.", dir=target.parent))
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _owner_is_dead(tmp: Path) -> bool:
    """True when the process that created `tmp` (pid in its name) no longer runs."""
    try:
        pid = int(tmp.name.split(".")[-2])
    except (IndexError, ValueError):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False

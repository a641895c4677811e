"""What every experiment entry point shares: config from TOML + flags + `--set`, logging, timed steps."""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sae_interp.config import ConfigError, apply_overrides, load_toml

__all__ = ["add_config_arguments", "resolve_config", "setup_logging", "timed_step"]

T = TypeVar("T")
logger = logging.getLogger(__name__)


def add_config_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """`--config FILE.toml` and repeatable `--set key=value`."""
    parser.add_argument("--config", type=Path, help=f"TOML file with a {what}")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )


def resolve_config(
    parser: argparse.ArgumentParser,
    cls: type[T],
    args: argparse.Namespace,
    flags: Mapping[str, str],
    extra: Sequence[str] = (),
) -> T:
    """Defaults < `--config` < flags (`flags` maps argparse dest -> config key) < extra < `--set`.

    A bad value exits through `parser.error` with the config's one-line message.
    """
    overrides = [
        f"{key}={json.dumps(str(value) if isinstance(value, Path) else value)}"
        for dest, key in flags.items()
        if (value := getattr(args, dest)) is not None
    ]
    try:
        base = load_toml(cls, args.config) if args.config else cls()
        return apply_overrides(base, [*overrides, *extra, *args.set])
    except ConfigError as err:
        parser.error(str(err))


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@contextmanager
def timed_step(name: str, timings: dict[str, float]) -> Iterator[None]:
    """Log the start and duration of a step and record its seconds in `timings[name]`."""
    logger.info("step %s ...", name)
    started = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - started, 2)
    logger.info("step %s done in %.1f s", name, timings[name])

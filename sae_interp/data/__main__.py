"""`python -m sae_interp.data`: print the data cards, or extract and time the cached sets.

python -m sae_interp.data cards > sae_interp/data/CARDS.md
python -m sae_interp.data prepare
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable

from sae_interp.data.cards import cards_markdown
from sae_interp.data.registry import DATASETS, iter_documents

__all__ = ["main"]


def _prepare() -> str:
    """Read every named set once (building the caches on first use) and report sizes and times."""
    lines = []
    for name in DATASETS:
        start = time.perf_counter()
        count = sum(1 for _ in iter_documents(name))
        lines.append(f"{name}: {count} documents in {time.perf_counter() - start:.2f} s")
    return "\n".join(lines) + "\n"


_COMMANDS: dict[str, Callable[[], str]] = {"cards": cards_markdown, "prepare": _prepare}


def main(argv: list[str] | None = None) -> int:
    """Run one command and print its result."""
    parser = argparse.ArgumentParser(
        prog="python -m sae_interp.data", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "command", choices=sorted(_COMMANDS), help="cards: Markdown data cards; prepare: build the caches"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.stdout.write(_COMMANDS[args.command]())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

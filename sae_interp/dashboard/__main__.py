"""`python -m sae_interp.dashboard RUN_DIR`: write the run's static HTML explorer and print its index."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from sae_interp.dashboard.render import render_run

__all__ = ["main"]

EXIT_BAD_RUN = 2
"""Same code argparse uses for bad arguments: the folder given is not something we can render."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sae_interp.dashboard",
        description="Write index.html, run.html and one page per latent into an explanation run "
        "folder; the pages open from the file system with no server or network.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run folder, e.g. explanations/<run>")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    try:
        index = render_run(args.run_dir)
    except ValueError as err:  # RunFolderError, or a latent/JSON file that does not parse
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_RUN
    print(index)
    return 0


if __name__ == "__main__":
    sys.exit(main())

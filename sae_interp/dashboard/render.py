"""Render a run folder into static HTML: `index.html`, `run.html` and one page per latent.

The dashboard reads the run only through `sae_interp.results` and plain JSON/CSV files, and loads
no model, so it can run on any machine the folder is copied to. The pages open from the file
system: no server, no network, no external script. Every file is written atomically, the index
last, so an interrupted render never leaves an index that links to a missing page.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from sae_interp._io import atomic_write_bytes
from sae_interp.dashboard._assets import STYLE_CSS
from sae_interp.dashboard._html import INDEX_PAGE, RUN_PAGE, STYLE_FILE
from sae_interp.dashboard.index import index_data, index_html
from sae_interp.dashboard.latent_page import latent_html
from sae_interp.dashboard.run_page import run_html
from sae_interp.results import LATENTS_DIR, LatentResult, iter_latent_results, latent_item_path

__all__ = ["RunFolderError", "render_run"]

logger = logging.getLogger(__name__)

_EXPECTED = f"an explanation run folder holding {LATENTS_DIR}/<hookpoint>/<latent>.json files"


class RunFolderError(ValueError):
    """The folder is not an explanation run the dashboard can render."""


def render_run(run_dir: str | Path) -> Path:
    """Write the dashboard of one explanation run into the run folder.

    Args:
        run_dir: the run folder (`explanations/<run>/`).

    Returns:
        The path of the written `index.html`.

    Raises:
        RunFolderError: `run_dir` is missing, has no latent files, or a latent's key points outside it.
        ValueError: a latent file or an optional JSON file is invalid (the message names the file).
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise RunFolderError(f"{run}: no such folder; expected {_EXPECTED}")
    results = iter_latent_results(run)
    if not results:
        raise RunFolderError(f"{run}: no latent results found; expected {_EXPECTED}")
    atomic_write_bytes(run / STYLE_FILE, STYLE_CSS.encode())
    pages: dict[str, str] = {}
    for result in tqdm(results, total=len(results), desc="latent pages", disable=None):
        rel = _page_path(run, result)
        root = "../" * (len(rel.parts) - 1)
        html = latent_html(result, root=root, index=INDEX_PAGE, run_page=RUN_PAGE)
        atomic_write_bytes(run / rel, html.encode())
        pages[result.key] = rel.as_posix()
    atomic_write_bytes(run / RUN_PAGE, run_html(run, results, pages, index=INDEX_PAGE).encode())
    data = index_data(results, [pages[r.key] for r in results])
    index = run / INDEX_PAGE
    atomic_write_bytes(index, index_html(run.name, data).encode())
    logger.info("dashboard of %d latents written to %s", len(results), index)
    return index


def _page_path(run: Path, result: LatentResult) -> PurePosixPath:
    """`latents/<hookpoint>/<latent>.html`, next to the latent's JSON file."""
    rel = PurePosixPath(latent_item_path(result.key)).with_suffix(".html")
    if rel.is_absolute() or ".." in rel.parts:
        raise RunFolderError(f"{run}: latent key {result.key!r} would put its page outside the run folder")
    return rel

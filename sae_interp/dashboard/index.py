"""The run's `index.html`: one sortable, filterable row per latent, paginated in the page.

The rows travel as one JSON blob and the page's own script draws 100 at a time, so a run with
10,000 latents opens as fast as one with ten (the HTML never holds 10,000 table rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypedDict

from sae_interp.dashboard._assets import INDEX_JS
from sae_interp.dashboard._html import RUN_PAGE, esc, json_for_script, page
from sae_interp.results import LatentResult

__all__ = ["PAGE_SIZE", "Column", "IndexData", "index_data", "index_html"]

PAGE_SIZE = 100


class Column(TypedDict):
    label: str
    kind: Literal["text", "num"]
    """"num" columns sort numerically (best first on the first click); "text" ones are searched."""
    link: bool
    """Whether the cell links to the latent's page."""


Cell = str | int | float | None


class IndexData(TypedDict):
    """What the index page's script reads (see `_assets.INDEX_JS`)."""

    page_size: int
    columns: list[Column]
    rows: list[list[Cell]]
    links: list[str]
    """Relative path from the index to each row's latent page."""


def _column(label: str, kind: Literal["text", "num"], *, link: bool = False) -> Column:
    return {"label": label, "kind": kind, "link": link}


def _scorer_names(results: Sequence[LatentResult]) -> list[str]:
    """Every scorer that scored any latent, in a stable order (latents may differ in their scorers)."""
    return sorted({name for r in results for name in r.scores})


def index_data(results: Sequence[LatentResult], pages: Sequence[str]) -> IndexData:
    """The JSON the index page's script reads: columns, one row per latent, and each row's link.

    Args:
        results: the run's latents.
        pages: for each result, the relative path from the index to its page.
    """
    scorers = _scorer_names(results)
    has_refusal = any(r.refusal is not None for r in results)
    columns = [
        _column("hookpoint", "text"),
        _column("latent", "num", link=True),
        _column("explanation", "text"),
        *(_column(name, "num") for name in scorers),
        _column("frequency", "num"),
        _column("max act", "num"),
    ]
    if has_refusal:
        columns += [_column("refusal cosine", "num"), _column("refusal rank", "num")]
    rows: list[list[Cell]] = []
    for r in results:
        row: list[Cell] = [r.hookpoint, r.latent, r.explanation.text]
        row += [r.scores[s].score if s in r.scores else None for s in scorers]
        row += [r.statistics.frequency, r.statistics.max]
        if has_refusal:
            row += [r.refusal.cosine, r.refusal.rank] if r.refusal else [None, None]
        rows.append(row)
    return {"page_size": PAGE_SIZE, "columns": columns, "rows": rows, "links": list(pages)}


def index_html(run_name: str, data: IndexData) -> str:
    """The index page around `data` (from `index_data`)."""
    head = "".join(
        f'<th aria-sort="none"><button type="button" data-col="{i}">{esc(c["label"])}</button></th>'
        for i, c in enumerate(data["columns"])
    )
    body = (
        f'<nav><a href="{RUN_PAGE}">run report</a></nav>\n'
        f"<h1>Latents of {esc(run_name)}</h1>\n"
        '<div id="controls"><input id="filter" type="search" placeholder="filter hookpoint, latent, '
        'explanation" aria-label="filter"><button type="button" id="prev">← prev</button>'
        '<button type="button" id="next">next →</button><span id="status"></span></div>\n'
        '<noscript><p class="absent">The table needs JavaScript; each latent also has its own page '
        "under latents/.</p></noscript>\n"
        f'<table id="latents"><thead><tr>{head}</tr></thead><tbody></tbody></table>\n'
        f'<script type="application/json" id="data">{json_for_script(data)}</script>\n'
        f"<script>{INDEX_JS}</script>"
    )
    return page(f"{run_name}: latents", body, root="")

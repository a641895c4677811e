"""The run page (`run.html`): refusal report, aligned latents, score distributions, summary, config.

Everything here but the score distributions comes from free-form files (JSON dicts, a CSV with any
columns), rendered generically, so that the page follows the pipeline's files rather than
duplicating their schema. Each optional file that is missing gets a line saying so.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson

from sae_interp._io import read_json
from sae_interp.dashboard._html import esc, fmt_number, json_html, page, table
from sae_interp.dashboard._svg import bin_values, histogram_svg
from sae_interp.results import LatentResult, latent_key

__all__ = ["run_html"]

REPORT_FILE = "refusal/report.json"
ALIGNED_FILE = "refusal/latents.csv"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.json"
FAILURES_FILE = "failures.jsonl"


def run_html(run_dir: Path, results: Sequence[LatentResult], pages: Mapping[str, str], *, index: str) -> str:
    """The run page of `run_dir`.

    Args:
        run_dir: the run folder.
        results: the run's latents (for the score distributions).
        pages: latent key -> relative path of its page, to link the aligned-latent table.
        index: the index page's file name.
    """
    sections = [
        ("Refusal direction", _json_section(run_dir, REPORT_FILE)),
        ("Latents aligned with the refusal direction", _aligned_section(run_dir, pages)),
        ("Score distributions across latents", _score_distributions(results)),
        ("Summary", _json_section(run_dir, SUMMARY_FILE)),
        ("Failures", _failures_section(run_dir)),
        ("Config", _json_section(run_dir, CONFIG_FILE)),
    ]
    body = f'<nav><a href="{esc(index)}">← all latents</a></nav>\n<h1>Run {esc(run_dir.name)}</h1>\n'
    body += "\n".join(f"<h2>{esc(title)}</h2>\n{html}" for title, html in sections)
    return page(f"{run_dir.name}: run report", body, root="")


def _absent(name: str) -> str:
    return f'<p class="absent">{esc(name)} is absent from this run.</p>'


def _json_section(run_dir: Path, name: str) -> str:
    path = run_dir / name
    return json_html(read_json(path)) if path.is_file() else _absent(name)


def _cell(text: str) -> str:
    """A CSV cell: numbers formatted and right-aligned, anything else escaped as text."""
    try:
        number = float(text)
    except ValueError:
        return esc(text)
    return f'<span class="num">{fmt_number(int(number) if number.is_integer() else number)}</span>'


def _aligned_section(run_dir: Path, pages: Mapping[str, str]) -> str:
    """The CSV as a table; a row naming a latent this run explained links to its page.

    A row names a latent by a `key` column, by `hookpoint` + `latent`, or by `latent` alone when
    the run has one hookpoint.
    """
    path = run_dir / ALIGNED_FILE
    if not path.is_file():
        return _absent(ALIGNED_FILE)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return '<p class="absent">The aligned-latent table is empty.</p>'
    hookpoints = {key.rsplit("/", 1)[0] for key in pages}
    only_hookpoint = next(iter(hookpoints)) if len(hookpoints) == 1 else None
    cells = []
    for row in rows:
        link = pages.get(_row_key(row, only_hookpoint) or "")
        page_link = f'<a href="{esc(link)}">page</a>' if link is not None else ""
        cells.append([*(_cell(v or "") for v in row.values()), page_link])
    return table([*(esc(c) for c in rows[0]), ""], cells, cls="data")


def _row_key(row: Mapping[str, str], only_hookpoint: str | None) -> str | None:
    if row.get("key"):
        return row["key"]
    hookpoint = row.get("hookpoint") or only_hookpoint
    latent = (row.get("latent") or "").strip()
    return latent_key(hookpoint, int(latent)) if hookpoint and latent.isdigit() else None


def _score_distributions(results: Sequence[LatentResult]) -> str:
    """One histogram per scorer of its headline score over the latents it scored."""
    by_scorer: dict[str, list[float | None]] = {}
    for r in results:
        for name, score in r.scores.items():
            by_scorer.setdefault(name, []).append(score.score)
    if not by_scorer:
        return '<p class="absent">No latent was scored.</p>'
    parts = []
    for name in sorted(by_scorer):
        values = [v for v in by_scorer[name] if v is not None]
        undefined = len(by_scorer[name]) - len(values)
        meta = f"{len(values)} latents, mean {fmt_number(sum(values) / len(values) if values else None)}"
        meta += f", {undefined} undefined" if undefined else ""
        # Most scores are fractions: a fixed 0..1 axis makes scorers and runs comparable at a glance.
        span = (0.0, 1.0) if all(0.0 <= v <= 1.0 for v in values) else None
        chart = histogram_svg(*bin_values(values, span=span), label=f"{name} scores") if values else ""
        parts.append(f'<h3>{esc(name)}</h3><p class="meta">{esc(meta)}</p>{chart}')
    return "\n".join(parts)


def _failures_section(run_dir: Path) -> str:
    path = run_dir / FAILURES_FILE
    if not path.is_file():
        return _absent(FAILURES_FILE)
    records = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return json_html(records) if records else '<p class="absent">No latent failed.</p>'

"""Inline SVG histograms: a latent's activation histogram and the run's score distributions.

Inline SVG needs no script or chart library, so the pages work from the file system offline.
"""

from __future__ import annotations

from collections.abc import Sequence

from sae_interp.dashboard._html import esc, fmt_number

__all__ = ["bin_values", "histogram_svg"]

_WIDTH = 480
_HEIGHT = 160
_PAD = 24
"""Room under the bars for the axis labels."""


def bin_values(
    values: Sequence[float], n_bins: int = 20, *, span: tuple[float, float] | None = None
) -> tuple[list[int], list[float]]:
    """Counts of `values` in `n_bins` equal bins, and the n_bins + 1 edges.

    Args:
        values: what to count.
        n_bins: how many bins.
        span: (low, high) of the axis, which must hold every value; default: the values' range.

    Raises:
        ValueError: `values` is empty (there is no range to bin).
    """
    if not values:
        raise ValueError("bin_values needs at least one value")
    low, high = span or (min(values), max(values))
    if high == low:  # one distinct value: a single bin of width 1 centred on it
        return [len(values)], [low - 0.5, high + 0.5]
    width = (high - low) / n_bins
    counts = [0] * n_bins
    for v in values:
        counts[min(int((v - low) / width), n_bins - 1)] += 1
    return counts, [low + i * width for i in range(n_bins + 1)]


def histogram_svg(counts: Sequence[int], edges: Sequence[float], *, label: str) -> str:
    """A bar chart of `counts`, bin i spanning edges[i]..edges[i + 1]; hover a bar for its numbers.

    Args:
        counts: one count per bin.
        edges: len(counts) + 1 bin edges.
        label: what is counted, for the accessible name.

    Raises:
        ValueError: `edges` does not have one more entry than `counts`.
    """
    if len(edges) != len(counts) + 1:
        raise ValueError(f"histogram of {label!r}: {len(counts)} counts need {len(counts) + 1} edges")
    if not counts:
        return f'<p class="absent">No histogram for {esc(label)}.</p>'
    top = max(max(counts), 1)
    bar_w = _WIDTH / len(counts)
    plot_h = _HEIGHT - _PAD
    bars = []
    for i, c in enumerate(counts):
        h = plot_h * c / top
        tip = f"{fmt_number(edges[i])} – {fmt_number(edges[i + 1])}: {c}"
        bars.append(
            f'<rect x="{i * bar_w:.1f}" y="{plot_h - h:.1f}" width="{max(bar_w - 1, 0.5):.1f}" '
            f'height="{h:.1f}"><title>{esc(tip)}</title></rect>'
        )
    axis = (
        f'<text x="0" y="{_HEIGHT - 6}">{esc(fmt_number(edges[0]))}</text>'
        f'<text x="{_WIDTH}" y="{_HEIGHT - 6}" text-anchor="end">{esc(fmt_number(edges[-1]))}</text>'
        f'<text x="{_WIDTH / 2}" y="{_HEIGHT - 6}" text-anchor="middle">max count {top}</text>'
    )
    return (
        f'<svg class="hist" viewBox="0 0 {_WIDTH} {_HEIGHT}" width="{_WIDTH}" height="{_HEIGHT}" '
        f'role="img" aria-label="{esc("histogram of " + label)}">{"".join(bars)}{axis}</svg>'
    )

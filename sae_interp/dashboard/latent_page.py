"""One latent's page: its explanation, examples shaded by activation, scores and activation histogram."""

from __future__ import annotations

from collections.abc import Sequence

from sae_interp.dashboard._html import esc, fmt_number, page, table, token_text
from sae_interp.dashboard._svg import histogram_svg
from sae_interp.results import ExampleOut, LatentResult, ScoreOut

__all__ = ["latent_html"]


def latent_html(result: LatentResult, *, root: str, index: str, run_page: str) -> str:
    """The page of one latent.

    Args:
        result: the latent's file, as read from the run folder.
        root: relative path from this page to the run folder ("../../" for latents/<hp>/<n>.html).
        index: the index page's file name inside the run folder.
        run_page: the run page's file name inside the run folder.
    """
    title = f"{result.hookpoint} · latent {result.latent}"
    scale = _activation_scale(result)
    body = "\n".join(
        [
            f'<nav><a href="{esc(root + index)}">← all latents</a>'
            f'<a href="{esc(root + run_page)}">run report</a></nav>',
            f"<h1>{esc(title)}</h1>",
            _explanation_html(result),
            "<h2>Activations</h2>",
            _statistics_html(result),
            "<h2>Scores</h2>",
            "\n".join(_score_html(s) for s in result.scores.values())
            or '<p class="absent">No scorer ran on this latent.</p>',
            _examples_html("Train examples (shown to the explainer)", result.train, scale),
            _examples_html("Test examples (held out for scoring)", result.test, scale),
            _examples_html("Non-activating examples", result.non_activating, scale),
        ]
    )
    return page(title, body, root=root)


def _explanation_html(result: LatentResult) -> str:
    e = result.explanation
    return (
        f'<p class="explanation">{esc(e.text)}</p>'
        f'<p class="meta">explainer {esc(e.explainer)} · prompt {esc(e.prompt_version)}</p>'
        f'<details><summary>raw answer</summary><pre class="example">{esc(e.raw)}</pre></details>'
    )


def _statistics_html(result: LatentResult) -> str:
    s = result.statistics
    facts = [("count", s.count), ("frequency", s.frequency), ("max", s.max), ("mean (nonzero)", s.mean)]
    if result.refusal is not None:
        r = result.refusal
        facts += [("refusal cosine", r.cosine), ("harmful − harmless", r.mean_diff), ("refusal rank", r.rank)]
        if r.attribution is not None:
            facts.append(("refusal attribution", r.attribution))
    stats = table([esc(k) for k, _ in facts], [[fmt_number(v) for _, v in facts]], cls="data")
    return stats + histogram_svg(s.hist, s.hist_edges, label=f"|activation| of latent {result.latent}")


def _score_html(score: ScoreOut) -> str:
    """A scorer's headline number, pooled metrics and per-quantile breakdown."""
    meta = f"score {fmt_number(score.score)}"
    if score.prompt_version:
        meta += f" · prompt {score.prompt_version}"
    if score.n_unparsed:
        meta += f" · {score.n_unparsed} unparsed answers"
    parts = [f"<h3>{esc(score.scorer)}</h3>", f'<p class="meta">{esc(meta)}</p>']
    if score.metrics:
        parts.append(
            table([esc(k) for k in score.metrics], [[fmt_number(v) for v in score.metrics.values()]])
        )
    if score.by_quantile:
        names = list(dict.fromkeys(m for metrics in score.by_quantile.values() for m in metrics))
        rows = ([esc(q), *(fmt_number(m.get(n)) for n in names)] for q, m in score.by_quantile.items())
        parts.append(table(["quantile", *(esc(n) for n in names)], rows, cls="data"))
    return "\n".join(parts)


def _activation_scale(result: LatentResult) -> float:
    """The activation that gets full colour: the latent's max, else the largest one shown."""
    if result.statistics.max > 0:
        return result.statistics.max
    shown = [abs(a) for ex in (*result.train, *result.test) for a in ex.activations]
    return max(shown, default=0.0) or 1.0


def _examples_html(heading: str, examples: Sequence[ExampleOut], scale: float) -> str:
    if not examples:
        return f'<h2>{esc(heading)}</h2><p class="absent">None.</p>'
    return f"<h2>{esc(heading)}</h2>\n" + "\n".join(_example_html(ex, scale) for ex in examples)


def _example_html(example: ExampleOut, scale: float) -> str:
    """One example window; each token's shade is its activation / scale, its title the exact value."""
    tag = example.kind if example.quantile is None else f"{example.kind} · q{example.quantile}"
    tag += f" · row {example.row}:{example.start} · max {fmt_number(max(example.activations, default=0.0))}"
    spans = []
    for tok, act in zip(example.tokens, example.activations, strict=False):
        alpha = min(abs(act) / scale, 1.0)
        style = f' style="background:rgba(255,140,0,{alpha:.2f})"' if alpha > 0 else ""
        spans.append(f'<span class="tok" title="{esc(fmt_number(act))}"{style}>{token_text(tok)}</span>')
    return f'<div class="example"><span class="tag">{esc(tag)}</span>{"".join(spans)}</div>'

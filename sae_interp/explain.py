"""An explanation run: latents from a cache -> explainer -> scorers -> `explanations/<run>/`.

    loader = FeatureLoader(FeatureDataset(cache_dir, LoaderConfig(), latents=[3, 17]))
    result = await explain_latents(loader, tokenizer, client, ExplainConfig(), "explanations/run1")

The first stage explains a latent, the second runs every scorer on the explanation concurrently
(a `Pipe`); each finished latent is written as `latents/<hookpoint>/<latent>.json` (the typed
`LatentResult`), and failures go to failures.jsonl with the stage that failed. Re-running skips
finished latents. At the end the HTML browser is rendered from the folder.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sae_interp._runfolder import RunFolder
from sae_interp.cache.layout import HIST_EDGES
from sae_interp.cache.records import Example, LatentRecord
from sae_interp.clients.base import LLMClient
from sae_interp.config import check_positive
from sae_interp.explainers.explainer import Explained, Explainer, ExplainerConfig, build_explainer
from sae_interp.pipeline import (
    CountingClient,
    Pipe,
    Pipeline,
    RunResult,
    UsageCounter,
    as_async_iterable,
    len_or_none,
)
from sae_interp.results import (
    ExampleOut,
    LatentExamples,
    LatentResult,
    LatentStatistics,
    RefusalAlignment,
    latent_item_path,
    latent_key,
)
from sae_interp.scorers.config import ScorerConfig
from sae_interp.scorers.registry import build_scorers

__all__ = ["ExplainConfig", "build_pipeline", "explain_latents", "latent_examples"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ExplainConfig:
    """The explanation half of a run."""

    explainer: ExplainerConfig = field(default_factory=ExplainerConfig)
    scorers: ScorerConfig = field(default_factory=ScorerConfig)
    max_in_flight: int = 8
    """Latents processed at once (their requests share the client's concurrency limit)."""

    def __post_init__(self) -> None:
        check_positive("explain", "max_in_flight", self.max_in_flight)


def _example_out(example: Example, tokens: list[str]) -> ExampleOut:
    return ExampleOut(
        tokens=tokens,
        activations=[round(float(a), 4) for a in example.activations.tolist()],
        kind=example.kind,
        quantile=example.quantile,
        row=example.row,
        start=example.start,
    )


def _hist_edges(n_bins: int, max_activation: float) -> list[float]:
    """The cache's fixed log2 edges with 0 below and, above, the latent's max (or the next power)."""
    inner = HIST_EDGES.tolist()[: n_bins - 1]
    return [0.0, *inner, max(abs(max_activation), 2 * inner[-1])]


def latent_examples(record: LatentRecord, tokenizer: Any) -> LatentExamples:
    """The decoded, tensor-free view of `record` that explainers and scorers read."""
    decoded = record.decode(tokenizer)
    lists = {
        name: [_example_out(ex, toks) for ex, toks in zip(getattr(record, name), decoded[name], strict=True)]
        for name in ("train", "test", "non_activating")
    }
    stats = record.statistics
    return LatentExamples(
        key=latent_key(record.hookpoint, record.latent),
        hookpoint=record.hookpoint,
        latent=record.latent,
        statistics=LatentStatistics(
            count=stats.count,
            frequency=stats.frequency,
            max=stats.max,
            mean=stats.mean,
            hist=stats.hist,
            hist_edges=_hist_edges(len(stats.hist), stats.max),
        ),
        **lists,
    )


async def _decoded(records: AsyncIterable[Any] | Iterable[Any], tokenizer: Any) -> AsyncIterator[Any]:
    """LatentRecords become LatentExamples; anything else (ready LatentExamples) passes through."""
    async for record in as_async_iterable(records):
        yield latent_examples(record, tokenizer) if isinstance(record, LatentRecord) else record


def build_pipeline(
    source: AsyncIterable[Any] | Iterable[Any],
    tokenizer: Any,
    client: LLMClient,
    cfg: ExplainConfig,
    run_dir: str | Path,
    *,
    refusal: Mapping[int, RefusalAlignment] | None = None,
    run_config: Any = None,
    total: int | None = None,
    explainer: Explainer | None = None,
) -> tuple[Pipeline, UsageCounter]:
    """The explain -> score pipeline over `source` (LatentRecords, or ready LatentExamples).

    Args:
        refusal: refusal alignment per latent id, copied into each latent's file.
        run_config: the resolved config of the whole run, for config.json.
        total: number of latents, for the progress bar.
        explainer: the first stage in place of `cfg.explainer`'s (e.g. one that hands out given
            explanations, to score them as they are).
    """
    usage = UsageCounter()
    counted = CountingClient(client, usage)
    explainer = explainer or build_explainer(counted, cfg.explainer)
    scorers = build_scorers(counted, cfg.scorers)
    alignment = dict(refusal or {})

    def to_json(item: LatentExamples, outputs: dict[str, Any]) -> dict[str, Any]:
        explained: Explained = outputs["explain"]
        result = LatentResult(
            **item.model_dump(),
            explanation=explained.explanation,
            scores=outputs["score"],
            refusal=alignment.get(item.latent),
        )
        return result.model_dump(mode="json")

    pipeline = Pipeline(
        _decoded(source, tokenizer),
        explainer,
        Pipe(*scorers, name="score"),
        key=lambda latent: latent.key,
        folder=RunFolder(run_dir, item_path=latent_item_path),
        max_in_flight=cfg.max_in_flight,
        total=total if total is not None else len_or_none(source),
        config=run_config if run_config is not None else cfg,
        usage=usage,
        to_json=to_json,
    )
    return pipeline, usage


async def explain_latents(
    source: AsyncIterable[Any] | Iterable[Any],
    tokenizer: Any,
    client: LLMClient,
    cfg: ExplainConfig,
    run_dir: str | Path,
    **kwargs: Any,
) -> RunResult:
    """Run `build_pipeline(...)` to the end, then render the HTML browser of `run_dir`."""
    pipeline, _ = build_pipeline(source, tokenizer, client, cfg, run_dir, **kwargs)
    result = await pipeline.run()
    _render(Path(run_dir))
    return result


def _render(run_dir: Path) -> None:
    from sae_interp.dashboard import render_run

    if any((run_dir / "latents").rglob("*.json")):
        logger.info("browser: %s", render_run(run_dir))

"""Can the scorers tell a latent's own explanation from another latent's? The scorers' control.

    python -m sae_interp.experiments.explanation_quality --cache CACHE_DIR
    python -m sae_interp.experiments.explanation_quality --cache CACHE_DIR --n-latents 40 \\
        --set 'client={kind="openai", base_url="http://127.0.0.1:8000/v1", model="Qwen/Qwen2.5-7B-Instruct"}'

Steps: (1) pick `n_latents` latents of the cache's first hookpoint with at least
`loader.min_examples` activations (seeded); (2) explain and score them: the normal explanation
run, into `<out_dir>/real/`; (3) score the same latents again with each one's explanation replaced
by another latent's (latent i of the chosen order gets the explanation of latent i+1), into
`<out_dir>/shuffled/`; (4) write `results.json` and `README.md`: per scorer, the mean score of real
and shuffled explanations, the mean paired difference, and how often real beats shuffled.

A scorer whose real and shuffled means agree does not measure the explanation; a judge that parses
few of its answers shows up as a large unparsed count. Both runs resume like any explanation run.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import math
import random
import statistics
import sys
from pathlib import Path
from typing import Any

from sae_interp._io import atomic_write_bytes, atomic_write_json
from sae_interp.cache.config import LoaderConfig
from sae_interp.cache.layout import CacheError, open_cache
from sae_interp.clients.factory import ClientConfig, make_client
from sae_interp.clients.local import DEFAULT_LOCAL_MODEL
from sae_interp.config import ConfigError, check_positive, config_to_dict
from sae_interp.experiments._cli import add_config_arguments, resolve_config, setup_logging, timed_step
from sae_interp.explain import ExplainConfig, build_pipeline, explain_latents
from sae_interp.explainers import Explained
from sae_interp.results import ExplanationOut, LatentExamples, LatentResult, iter_latent_results
from sae_interp.scorers.config import ScorerConfig

__all__ = ["ExplanationQualityConfig", "main", "run", "run_async"]

logger = logging.getLogger(__name__)
SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExplanationQualityConfig:
    """Which cache, how many latents, which judge."""

    cache: Path = Path()
    """A latent cache folder (native or Delphi layout); its first hookpoint is used."""
    n_latents: int = 20
    seed: int = 0
    """Seeds the choice of latents (the loader has its own seed in `loader`)."""
    loader: LoaderConfig = dataclasses.field(
        default_factory=lambda: LoaderConfig(
            min_examples=20, n_train=10, n_test=10, n_non_activating=10, n_quantiles=5
        )
    )
    client: ClientConfig = dataclasses.field(
        default_factory=lambda: ClientConfig(kind="local", model=DEFAULT_LOCAL_MODEL, max_concurrency=8)
    )
    explain: ExplainConfig = dataclasses.field(
        default_factory=lambda: ExplainConfig(
            scorers=ScorerConfig(names=("detection", "fuzzing", "embedding"))
        )
    )
    out_dir: Path = Path("experiments/explanation_quality")

    def __post_init__(self) -> None:
        check_positive("explanation_quality", "n_latents", self.n_latents)
        if self.n_latents < 2:
            raise ConfigError("explanation_quality.n_latents must be >= 2: shuffling needs another latent")


class GivenExplanations:
    """An explainer stage that hands out fixed explanations (the shuffled control's "explainer")."""

    name = "explain"

    def __init__(self, explanations: dict[str, ExplanationOut]) -> None:
        self.explanations = explanations

    async def __call__(self, latent: LatentExamples) -> Explained:
        return Explained(latent, self.explanations[latent.key])


def choose_latents(cache: Path, cfg: ExplanationQualityConfig) -> tuple[str, list[int]]:
    """`n_latents` latents of the first hookpoint with enough activations, drawn with `seed`.

    Raises:
        ValueError: fewer than two latents have `loader.min_examples` activations.
    """
    index = open_cache(cache)
    hookpoint = next(iter(index.hookpoints))
    counts = index.statistics(hookpoint).count
    eligible = [int(i) for i in (counts >= cfg.loader.min_examples).nonzero().flatten()]
    if len(eligible) < 2:
        raise ValueError(
            f"{cache}: only {len(eligible)} latents of {hookpoint} have >= {cfg.loader.min_examples} "
            "activations; cache more tokens or lower loader.min_examples"
        )
    if len(eligible) < cfg.n_latents:
        logger.warning("only %d latents have enough activations; using all of them", len(eligible))
    chosen = random.Random(cfg.seed).sample(eligible, min(cfg.n_latents, len(eligible)))
    return hookpoint, sorted(chosen)


def shuffled(results: list[LatentResult]) -> dict[str, ExplanationOut]:
    """Each latent gets the explanation of the next one (a derangement: never its own)."""
    return {r.key: results[(i + 1) % len(results)].explanation for i, r in enumerate(results)}


def _examples(result: LatentResult) -> LatentExamples:
    return LatentExamples.model_validate(result.model_dump(include=set(LatentExamples.model_fields)))


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def compare(real: list[LatentResult], control: list[LatentResult]) -> dict[str, Any]:
    """Per scorer: means of real and shuffled scores, the mean paired difference and its standard
    error, real's win rate."""
    by_key = {r.key: r for r in control}
    names = sorted({name for r in real for name in r.scores})
    table: dict[str, Any] = {}
    for name in names:
        pairs = [
            (r.scores[name].score, by_key[r.key].scores[name].score)
            for r in real
            if r.key in by_key and name in r.scores and name in by_key[r.key].scores
        ]
        pairs = [
            (a, b)
            for a, b in pairs
            if a is not None and b is not None and not (math.isnan(a) or math.isnan(b))
        ]
        diffs = [a - b for a, b in pairs]
        table[name] = {
            "n": len(pairs),
            "real_mean": _mean([a for a, _ in pairs]),
            "shuffled_mean": _mean([b for _, b in pairs]),
            "mean_difference": _mean(diffs),
            "difference_se": statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else None,
            "real_wins": sum(d > 0 for d in diffs) / len(diffs) if diffs else None,
            "ties": sum(d == 0 for d in diffs) / len(diffs) if diffs else None,
            "unparsed_real": sum(r.scores[name].n_unparsed for r in real if name in r.scores),
            "unparsed_shuffled": sum(r.scores[name].n_unparsed for r in control if name in r.scores),
        }
    return table


def _markdown(report: dict[str, Any]) -> str:
    def fmt(x: Any) -> str:
        return "n/a" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)

    lines = [
        "# Explanation quality: real vs shuffled explanations",
        "",
        f"Cache `{report['cache']}`, hookpoint `{report['hookpoint']}`, {len(report['latents'])} latents; "
        f"judge: {report['judge']}.",
        "",
        "| scorer | n | real mean | shuffled mean | mean difference (s.e.) | real wins | ties "
        "| unparsed (real/shuffled) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in report["scorers"].items():
        lines.append(
            f"| {name} | {row['n']} | {fmt(row['real_mean'])} | {fmt(row['shuffled_mean'])} | "
            f"{fmt(row['mean_difference'])} ({fmt(row['difference_se'])}) | {fmt(row['real_wins'])} | "
            f"{fmt(row['ties'])} | "
            f"{row['unparsed_real']}/{row['unparsed_shuffled']} |"
        )
    lines += [
        "",
        "Shuffled: each latent scored with the explanation of another latent of the same set. A scorer "
        "that works scores real explanations higher (a positive mean difference, real winning most pairs).",
        "",
        "Explanations:",
        "",
    ]
    lines += [f"- latent {k}: {text}" for k, text in report["explanations"].items()]
    return "\n".join(lines) + "\n"


async def run_async(cfg: ExplanationQualityConfig) -> dict[str, Any]:
    """Run both passes (resuming) and write results.json and README.md to `cfg.out_dir`."""
    from sae_interp.cache import FeatureDataset, FeatureLoader
    from sae_interp.models import load_model

    timings: dict[str, float] = {}
    hookpoint, latents = choose_latents(cfg.cache, cfg)
    model = load_model(open_cache(cfg.cache).model)
    real_dir, control_dir = cfg.out_dir / "real", cfg.out_dir / "shuffled"
    client = make_client(cfg.client, loaded=model)
    try:
        with timed_step("real", timings):
            dataset = FeatureDataset(cfg.cache, cfg.loader, {hookpoint: latents})
            await explain_latents(
                FeatureLoader(dataset), model.tokenizer, client, cfg.explain, real_dir,
                run_config=cfg, total=len(dataset),
            )  # fmt: skip
        real = iter_latent_results(real_dir)
        with timed_step("shuffled", timings):
            pipeline, _ = build_pipeline(
                [_examples(r) for r in real], model.tokenizer, client, cfg.explain, control_dir,
                run_config=cfg, explainer=GivenExplanations(shuffled(real)),
            )  # fmt: skip
            await pipeline.run()
    finally:
        await client.aclose()
    control = iter_latent_results(control_dir)
    report = {
        "schema_version": SCHEMA_VERSION,
        "cache": str(cfg.cache),
        "hookpoint": hookpoint,
        "latents": [r.latent for r in real],
        "judge": f"{cfg.client.kind}:{cfg.client.model}",
        "scorers": compare(real, control),
        "explanations": {str(r.latent): r.explanation.text for r in real},
        "timings_s": timings,
        "config": config_to_dict(cfg),
    }
    atomic_write_json(cfg.out_dir / "results.json", report)
    atomic_write_bytes(cfg.out_dir / "README.md", _markdown(report).encode())
    return report


def run(cfg: ExplanationQualityConfig) -> dict[str, Any]:
    """`run_async` in a fresh event loop."""
    return asyncio.run(run_async(cfg))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sae_interp.experiments.explanation_quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cache", type=Path, help="latent cache folder")
    parser.add_argument("--n-latents", type=int, help="latents to explain (default 20)")
    parser.add_argument("--out-dir", type=Path, help="where results go")
    add_config_arguments(parser, "ExplanationQualityConfig")
    args = parser.parse_args(argv)
    cfg = resolve_config(
        parser,
        ExplanationQualityConfig,
        args,
        {"cache": "cache", "n_latents": "n_latents", "out_dir": "out_dir"},
    )
    if cfg.cache == Path():
        parser.error("--cache is required: a latent cache folder (python -m sae_interp.cache run makes one)")
    setup_logging()
    try:
        report = run(cfg)
    except (CacheError, FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    print(_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Delphi's side of bench/pipeline.py: its Pipeline, OpenRouter client, explainer and scorers.

Runs with the anchors' python (`.anchors-venv/bin/python`, which has eai-delphi) and imports nothing
from sae_interp. One JSON object goes to stdout; logs go to stderr.

    python bench/_delphi_pipeline.py --base-url http://127.0.0.1:PORT/v1 --items 100 --batches 20

The request path is Delphi's own: `Pipeline.run(max_concurrent)` over `process_wrapper`'d
`DefaultExplainer` and a `Pipe` of `DetectionScorer` and `FuzzingScorer`, all calling its
`OpenRouter` client. Only the two steps that need a real latent cache are replaced: the explainer's
prompt is built from placeholder examples, and each scorer's `_prepare` returns `batches *
n_shown` placeholder samples, so each scorer sends `batches` prompts per latent through Delphi's
`_batch` / `_query` / `_generate` / `_parse`, exactly as it would for real samples.

`delphi.clients` imports vllm at module level (for its offline client); where vllm is absent
(CPU machines) empty stand-in modules are registered first, since this script never uses it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import resource
import sys
import time
import types
from typing import Any


def _stand_in_for_vllm() -> None:
    """Register empty `vllm` modules so `delphi.clients` imports without it (never called here)."""
    if importlib.util.find_spec("vllm") is not None:
        return
    names = {
        "vllm": ("LLM", "SamplingParams"),
        "vllm.distributed": (),
        "vllm.distributed.parallel_state": ("destroy_distributed_environment", "destroy_model_parallel"),
        "vllm.inputs": ("TokensPrompt",),
    }
    for name, attributes in names.items():
        module = types.ModuleType(name)
        for attribute in attributes:
            setattr(module, attribute, object)
        sys.modules[name] = module


_stand_in_for_vllm()

from delphi.clients import OpenRouter  # noqa: E402
from delphi.explainers import DefaultExplainer  # noqa: E402
from delphi.explainers.default.prompt_builder import build_prompt  # noqa: E402
from delphi.pipeline import Pipe, Pipeline, process_wrapper  # noqa: E402
from delphi.scorers import DetectionScorer, FuzzingScorer  # noqa: E402
from delphi.scorers.classifier.sample import ClassifierOutput, Sample  # noqa: E402
from delphi.scorers.scorer import ScorerResult  # noqa: E402


class PlaceholderSamples:
    """Stands in for `_prepare`, the one scorer step that reads cached examples."""

    n_samples = 0

    def _prepare(self, record: Any) -> list[Sample]:
        return [
            Sample(f"placeholder example {i} with a few tokens", ClassifierOutput([], [], 0, i % 2 == 0))
            for i in range(self.n_samples)
        ]


class Detection(PlaceholderSamples, DetectionScorer):
    pass


class Fuzzing(PlaceholderSamples, FuzzingScorer):
    pass


class Explainer(DefaultExplainer):
    """Delphi's default explainer (its prompt, call and parse) on placeholder examples."""

    def _build_prompt(self, examples: Any) -> list[dict]:
        lines = "\n".join(f"Example {i}: placeholder <<token>> text (0.5)" for i in range(40))
        return build_prompt(examples=lines, activations=self.activations, cot=self.cot)


async def run(args: argparse.Namespace) -> dict[str, float]:
    client = OpenRouter("bench", api_key="bench", base_url=f"{args.base_url}/chat/completions")
    scorers = []
    for cls in (Detection, Fuzzing):
        scorer = cls(client, n_examples_shown=args.n_shown)
        scorer.n_samples = args.batches * args.n_shown
        scorers.append(scorer)

    def with_explanation(result: Any) -> Any:
        return types.SimpleNamespace(latent=result.record.latent, explanation=result.explanation)

    def count_correct(result: ScorerResult) -> int:
        return sum(bool(out.correct) for out in result.score)

    explainer = process_wrapper(Explainer(client, activations=False), postprocess=with_explanation)
    scorer_pipe = Pipe(*(process_wrapper(s, postprocess=count_correct) for s in scorers))

    async def records():
        for i in range(args.items):
            yield types.SimpleNamespace(latent=i, train=[])

    pipeline = Pipeline(records(), explainer, scorer_pipe)
    started = time.perf_counter()
    results = await pipeline.run(args.in_flight)
    seconds = time.perf_counter() - started
    scored = sum(r is not None for r in results)
    return {"seconds": seconds, "items": len(results), "scored": scored}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", required=True, help="the loopback server's API root")
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--batches", type=int, required=True, help="prompts per scorer per latent")
    parser.add_argument("--n-shown", type=int, required=True, help="examples per scorer prompt")
    parser.add_argument("--in-flight", type=int, required=True, help="Pipeline.run(max_concurrent)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    result = asyncio.run(run(args))
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

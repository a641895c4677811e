"""Which embedded model makes the better local explainer and judge? Constructed latents, known answers.

Constructed keyword latents (tests/latents.py: latent i fires on one word) go through the in-process
`Local` client with each embedded model:
- explain: the default explainer's answer names the keyword ("hit"), and seconds per explanation;
- detect (unless --no-detection): detection scores "the word <keyword>" (right) against another
  latent's keyword (shuffled). A judge that works scores right >> shuffled (balanced accuracy; 0.5
  is chance) and parses its answers; seconds per latent.
Prints one table, with the load average (other work on the machine slows every row alike).

    PYTHONPATH=. python bench/local_judge.py --latents 6
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import time

from sae_interp.clients.local import Local
from sae_interp.explainers import DefaultExplainer, Explained, ExplainerConfig
from sae_interp.explainers.parse import ExplanationParseError
from sae_interp.results import ExplanationOut
from sae_interp.scorers import DetectionScorer, ScorerConfig
from tests.latents import KEYWORDS, make_latent


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


async def explain(client: Local, n_latents: int) -> dict[str, float]:
    explainer = DefaultExplainer(client, ExplainerConfig(max_tokens=60))
    latents = [make_latent(i) for i in range(n_latents)]
    started = time.perf_counter()
    results = await asyncio.gather(*(explainer(latent) for latent in latents), return_exceptions=True)
    seconds = time.perf_counter() - started
    hits, parsed = 0, 0
    for i, result in enumerate(results):
        if isinstance(result, ExplanationParseError):
            continue
        if isinstance(result, BaseException):
            raise result
        parsed += 1
        hits += KEYWORDS[i] in result.explanation.text.lower()
        print(f"  {KEYWORDS[i]:>8}: {result.explanation.text[:100]!r}")
    n = n_latents
    return {"hit": hits / n, "explained": parsed / n, "s_per_explanation": seconds / n}


async def detect(client: Local, n_latents: int) -> dict[str, float]:
    scorer = DetectionScorer(client, ScorerConfig(batch_size=5))
    right, shuffled, unparsed, total = [], [], 0, 0
    started = time.perf_counter()
    for i in range(n_latents):
        latent = make_latent(i, n_test=10, n_non=10)
        for word, out in ((KEYWORDS[i], right), (KEYWORDS[(i + 1) % len(KEYWORDS)], shuffled)):
            explanation = ExplanationOut(text=f"the word {word}", explainer="-", prompt_version="-", raw="")
            score = await scorer(Explained(latent, explanation))
            if score.score is not None:
                out.append(score.score)
            unparsed += score.n_unparsed
            total += int(score.metrics["n"] or 0)
    seconds = time.perf_counter() - started
    return {"right": _mean(right), "shuffled": _mean(shuffled), "parsed": 1 - unparsed / total,
            "s_per_latent": seconds / n_latents}  # fmt: skip


async def measure(model: str, n_latents: int, detection: bool) -> dict[str, float]:
    client = Local(model, max_batch=8)
    try:
        row = await explain(client, n_latents)
        if detection:
            row |= await detect(client, n_latents)
    finally:
        await client.aclose()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latents", type=int, default=6)
    parser.add_argument("--models", nargs="+", default=["gemma-3-270m", "qwen2.5-coder-0.5b-instruct"])
    parser.add_argument("--no-detection", action="store_true", help="measure the explainer only")
    args = parser.parse_args()
    rows = {}
    for model in args.models:
        print(model)
        rows[model] = asyncio.run(measure(model, args.latents, not args.no_detection))
    print(f"\nload average {os.getloadavg()[0]:.1f}; {args.latents} latents")
    columns = ["hit", "explained", "s_per_explanation", "right", "shuffled", "parsed", "s_per_latent"]
    print(f"{'model':30}" + "".join(f"{c:>18}" for c in columns))
    for model, row in rows.items():
        print(f"{model:30}" + "".join(f"{row.get(c, math.nan):18.3f}" for c in columns))


if __name__ == "__main__":
    main()

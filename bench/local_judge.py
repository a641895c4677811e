"""Which embedded model judges explanations better? Detection with right vs shuffled explanations.

Constructed keyword latents (tests/latents.py: latent i fires on one word) are judged by the
in-process `Local` client with each embedded model: "the word <keyword>" (right) against another
latent's keyword (shuffled). A judge that works scores right >> shuffled (balanced accuracy; 0.5 is
chance) and parses its answers. Also reports seconds per latent. Prints one table.

    python bench/local_judge.py --latents 6
"""

from __future__ import annotations

import argparse
import asyncio
import time

from sae_interp.clients.local import Local
from sae_interp.explainers import Explained
from sae_interp.results import ExplanationOut
from sae_interp.scorers import DetectionScorer, ScorerConfig
from tests.latents import KEYWORDS, make_latent


async def judge(model: str, n_latents: int) -> dict[str, float]:
    client = Local(model, max_batch=8)
    scorer = DetectionScorer(client, ScorerConfig(batch_size=5))
    right, shuffled, unparsed, total = [], [], 0, 0
    started = time.perf_counter()
    for i in range(n_latents):
        latent = make_latent(i, n_test=10, n_non=10)
        for word, out in ((KEYWORDS[i], right), (KEYWORDS[(i + 1) % len(KEYWORDS)], shuffled)):
            explanation = ExplanationOut(text=f"the word {word}", explainer="-", prompt_version="-", raw="")
            score = await scorer(Explained(latent, explanation))
            out.append(score.score if score.score is not None else float("nan"))
            unparsed += score.n_unparsed
            total += int(score.metrics["n"] or 0)
    seconds = time.perf_counter() - started
    await client.aclose()
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    return {"right": mean(right), "shuffled": mean(shuffled), "parsed": 1 - unparsed / total,
            "s_per_latent": seconds / n_latents}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latents", type=int, default=6)
    parser.add_argument("--models", nargs="+", default=["gemma-3-270m", "qwen2.5-coder-0.5b-instruct"])
    args = parser.parse_args()
    print(f"{'model':32} {'right':>6} {'shuffled':>8} {'parsed':>7} {'s/latent':>9}")
    for model in args.models:
        r = asyncio.run(judge(model, args.latents))
        print(
            f"{model:32} {r['right']:6.3f} {r['shuffled']:8.3f} {r['parsed']:7.2f} {r['s_per_latent']:9.1f}"
        )


if __name__ == "__main__":
    main()

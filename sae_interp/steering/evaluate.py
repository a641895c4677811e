"""Behaviour x coherence of steering methods over a sweep of scales, with proxies a small model can
be scored on without a judge.

For each behaviour (a topic a base model can be pushed towards: weddings, London, French, positive
sentiment) and each method (SAE-TS targeted vector, CAA, SAE decoder row), every scale of the sweep
generates continuations of neutral prompts. Proxies, all computed with the embedded model:

- `word_rate`: share of continuations containing one of the behaviour's words (whole words);
- `target_activation`: mean activation of the behaviour's target latents over the generated tokens,
  encoded by the unsteered model (the quantity SAE-TS optimises);
- `coherence`: `min(1, exp(nll_unsteered_text - nll))`, where nll is the unsteered model's mean
  negative log-likelihood of the continuation; 1 means as fluent as unsteered text;
- `score = word_rate * coherence`, the product SAE-TS maximises with a judge's ratings instead
  (`steering.judge` adds those when a judge client is given).

All (method, scale) rows of one behaviour run in one batched generation (per-row steering vectors).
"""

from __future__ import annotations

import io
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from sae_interp._io import atomic_write_bytes
from sae_interp.models import LoadedModel, PromptBatch
from sae_interp.sae import SAE
from sae_interp.steering.steer import Generations, generate_steered, latent_means

__all__ = ["BEHAVIOURS", "Behaviour", "SweepRow", "plot_sweep", "sequence_nll", "sweep_behaviour"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Behaviour:
    """A steerable topic: contrastive texts (for CAA and target latents) and words that show it."""

    name: str
    topic: str
    """What a judge is asked the text is about ("weddings")."""
    positives: tuple[str, ...]
    """Texts showing the behaviour."""
    negatives: tuple[str, ...]
    """Matched neutral texts."""
    words: tuple[str, ...]
    """Lower-case words whose presence in a continuation counts as the behaviour."""

    def hits(self, text: str) -> bool:
        """True when `text` contains one of `words` as a whole word (case-insensitive)."""
        return any(re.search(rf"\b{re.escape(w)}\b", text.lower()) for w in self.words)


_NEUTRAL = (
    "I went to the shop and bought some bread.",
    "The meeting was moved to next Tuesday afternoon.",
    "He fixed the bicycle in the garage.",
    "The report has three sections and a summary.",
)

BEHAVIOURS: dict[str, Behaviour] = {
    b.name: b
    for b in (
        Behaviour(
            name="wedding",
            topic="weddings",
            positives=(
                "The bride and groom exchanged rings at the wedding.",
                "The wedding ceremony was followed by a reception for the guests.",
                "They got married in June and the wedding cake was huge.",
                "She wore a white wedding dress when they were married.",
            ),
            negatives=_NEUTRAL,
            words=("wedding", "weddings", "bride", "groom", "married", "marriage", "ceremony"),
        ),
        Behaviour(
            name="london",
            topic="London",
            positives=(
                "London is the capital of England, on the river Thames.",
                "We took the Underground across London to Westminster.",
                "Big Ben and the Tower of London are famous London sights.",
                "She lives in a flat in central London near Camden.",
            ),
            negatives=_NEUTRAL,
            words=("london", "thames", "westminster", "england", "british", "uk"),
        ),
        Behaviour(
            name="french",
            topic="something written in French",
            positives=(
                "Je suis allé au magasin et j'ai acheté du pain.",
                "La réunion a été déplacée à mardi prochain.",
                "Il a réparé le vélo dans le garage.",
                "Le rapport a trois sections et un résumé.",
            ),
            negatives=_NEUTRAL,
            words=("le", "la", "les", "est", "et", "je", "une", "des", "du", "pas", "french", "france"),
        ),
        Behaviour(
            name="positive",
            topic="something described in a positive, happy tone",
            positives=(
                "I absolutely love this, it is wonderful and makes me so happy.",
                "What a fantastic day, everything went perfectly!",
                "The food was amazing and the staff were lovely.",
                "This is the best gift I have ever received, thank you!",
            ),
            negatives=(
                "I really hate this, it is awful and makes me so sad.",
                "What a terrible day, everything went wrong.",
                "The food was disgusting and the staff were rude.",
                "This is the worst gift I have ever received.",
            ),
            words=(
                "love",
                "wonderful",
                "happy",
                "great",
                "amazing",
                "fantastic",
                "best",
                "lovely",
                "beautiful",
            ),
        ),
    )
}


@dataclass(frozen=True, kw_only=True)
class SweepRow:
    """Proxies of one (behaviour, method, scale) cell, averaged over its continuations."""

    behaviour: str
    method: str
    scale: float
    """Multiple of the calibrated steering scale."""
    word_rate: float
    target_activation: float
    nll: float
    coherence: float
    score: float
    example: str
    """The first continuation, to read."""
    texts: tuple[str, ...] = ()
    """Every continuation of the cell."""
    judge_behaviour: float | None = None
    """Mean judge rating of the behaviour, in [0, 1] (`steering.judge`); None when not judged."""
    judge_coherence: float | None = None
    """Mean judge rating of coherence, in [0, 1]."""
    judge_score: float | None = None
    """judge_behaviour x judge_coherence."""

    @property
    def ranking(self) -> float:
        """The judged score where there is one, else the proxy score."""
        return self.judge_score if self.judge_score is not None else self.score


@torch.inference_mode()
def sequence_nll(model: LoadedModel, gens: Generations, *, batch_size: int) -> Tensor:
    """Mean NLL per generated token under the unsteered model: [rows] (nan for an empty row)."""
    ids, mask = gens.full()
    start_new = gens.prompts.input_ids.shape[1]
    out: list[Tensor] = []
    for lo in range(0, ids.shape[0], batch_size):
        b_ids, b_mask = (
            ids[lo : lo + batch_size].to(model.device),
            mask[lo : lo + batch_size].to(model.device),
        )
        logits = model.hf(input_ids=b_ids, attention_mask=b_mask).logits[:, start_new - 1 : -1].float()
        nll = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), b_ids[:, start_new:], reduction="none"
        )
        m = b_mask[:, start_new:].float()
        out.append(((nll * m).sum(1) / m.sum(1)).cpu())
    return torch.cat(out)


def sweep_behaviour(
    model: LoadedModel,
    sae: SAE,
    layer: int,
    prompts: PromptBatch,
    behaviour: Behaviour,
    directions: dict[str, Tensor],
    target_latents: Sequence[int],
    *,
    base_scale: float,
    multipliers: Sequence[float],
    n_samples: int,
    max_new_tokens: int,
    batch_size: int,
    seed: int = 0,
) -> list[SweepRow]:
    """Generate under every (method, scale) and score the proxies; one unsteered row comes first.

    Args:
        directions: method name -> [d_model] unit direction.
        target_latents: the behaviour's latents for `target_activation`.
        base_scale: the calibrated scale; each cell steers with `multiplier * base_scale`.

    Returns:
        Rows: ("none", 0.0), then every method x multiplier.
    """
    cells = [("none", 0.0)] + [(m, mult) for m in directions for mult in multipliers]
    vectors = torch.stack(
        [torch.zeros(sae.cfg.d_in) if m == "none" else directions[m] * mult * base_scale for m, mult in cells]
    )
    gens = generate_steered(
        model,
        prompts,
        vectors,
        layer,
        n_samples=n_samples,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        seed=seed,
    )
    texts = model.tokenizer.batch_decode(gens.new_ids, skip_special_tokens=True)
    target = latent_means(model, sae, layer, gens, batch_size=batch_size)[:, list(target_latents)].sum(1)
    nll = sequence_nll(model, gens, batch_size=batch_size)
    per_cell = len(prompts) * n_samples
    ref_nll = float(nll[:per_cell].nanmean())
    rows = []
    for i, (method, mult) in enumerate(cells):
        part = slice(i * per_cell, (i + 1) * per_cell)
        word_rate = sum(behaviour.hits(t) for t in texts[part]) / per_cell
        cell_nll = float(nll[part].nanmean())
        coherence = min(1.0, math.exp(ref_nll - cell_nll)) if not math.isnan(cell_nll) else 0.0
        rows.append(
            SweepRow(
                behaviour=behaviour.name,
                method=method,
                scale=mult,
                word_rate=word_rate,
                target_activation=float(target[part].mean()),
                nll=cell_nll,
                coherence=coherence,
                score=word_rate * coherence,
                example=texts[part][0],
                texts=tuple(texts[part]),
            )
        )
    return rows


def plot_sweep(rows: Sequence[SweepRow], path: Path) -> None:
    """One column per behaviour; rows of panels: word rate, coherence, score, target activation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    behaviours = sorted({r.behaviour for r in rows})
    metrics = ("word_rate", "coherence", "score", "target_activation")
    fig, axes = plt.subplots(
        len(metrics), len(behaviours), figsize=(3.2 * len(behaviours), 2.4 * len(metrics)), squeeze=False
    )
    for col, name in enumerate(behaviours):
        mine = [r for r in rows if r.behaviour == name]
        none = next(r for r in mine if r.method == "none")
        for method in sorted({r.method for r in mine} - {"none"}):
            line = [none, *sorted((r for r in mine if r.method == method), key=lambda r: r.scale)]
            for row_i, metric in enumerate(metrics):
                ax = axes[row_i][col]
                ax.plot([r.scale for r in line], [getattr(r, metric) for r in line], marker="o", label=method)
                ax.set_title(f"{name}: {metric}", fontsize=9)
                ax.set_xlabel("scale (x calibrated)", fontsize=8)
        axes[0][col].legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())

"""Choosing the layer of the refusal direction: bypass, induce and KL scores per candidate.

For each candidate layer l with direction r_l (REFERENCE.md section 1):
- bypass: mean refusal score of harmful prompts with r_l ablated everywhere (lower is better);
- induce: mean refusal score of harmless prompts with r_l added at layer l (must be > 0);
- KL: mean KL of the next-token distribution of harmless prompts under ablation (must be < 0.1);
- layer < 0.8 * n_layers.
The chosen candidate has the lowest bypass among those passing every filter; when none passes,
filters are relaxed in RELAX_ORDER and the report names the relaxed ones. All of it is forwards
only: no generation.

Relaxing KL is a trade-off, not a free-for-all. On small chat models (Qwen2.5-Coder-0.5B: every
layer whose direction really bypasses refusal has KL 0.5-1.0, and the only layer under 0.1 barely
moves refusal) the lowest bypass overall is also the most destructive direction. So once KL must be
relaxed, the chosen candidate is the *least-KL effective* one: among directions whose ablation
lowers the harmful prompts' refusal log-odds by at least `min_drop` below their unablated baseline,
the one that disturbs harmless prompts least.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sae_interp.models import Ablate, AddVector, LoadedModel, PromptBatch
from sae_interp.refusal.direction import RefusalDirections
from sae_interp.refusal.metrics import kl_divergence, next_token_logprobs, refusal_scores

__all__ = ["RELAX_ORDER", "CandidateScore", "score_candidates", "select_candidate"]


@dataclass(frozen=True)
class CandidateScore:
    """Scores of one candidate layer's direction."""

    layer: int
    bypass: float
    """Mean refusal score of harmful prompts under ablation."""
    induce: float
    """Mean refusal score of harmless prompts under activation addition."""
    kl: float
    """Mean KL on harmless prompts under ablation."""


def score_candidates(
    model: LoadedModel,
    directions: RefusalDirections,
    harmful: PromptBatch,
    harmless: PromptBatch,
    token_ids: Sequence[int],
    *,
    batch_size: int = 8,
) -> list[CandidateScore]:
    """Bypass, induce and KL of each layer's direction, on validation prompts."""
    baseline_harmless = next_token_logprobs(model, harmless, batch_size=batch_size)
    scores = []
    for layer in directions.layers:
        r = directions.at(layer)
        ablate = [Ablate(r)]
        harmful_ablated = next_token_logprobs(model, harmful, interventions=ablate, batch_size=batch_size)
        harmless_ablated = next_token_logprobs(model, harmless, interventions=ablate, batch_size=batch_size)
        harmless_added = next_token_logprobs(
            model, harmless, interventions=[AddVector(layer, r)], batch_size=batch_size
        )
        scores.append(
            CandidateScore(
                layer=layer,
                bypass=float(refusal_scores(harmful_ablated, token_ids).mean()),
                induce=float(refusal_scores(harmless_added, token_ids).mean()),
                kl=float(kl_divergence(baseline_harmless, harmless_ablated).mean()),
            )
        )
    return scores


RELAX_ORDER: tuple[str, ...] = ("induce", "kl", "layer")
"""Filters dropped, in this order, when no candidate passes them all: inducing refusal is the most
expendable (small models often raise the refusal score without crossing 0); staying below the KL
limit and the depth limit protect the model's behaviour on harmless prompts and are kept longest."""


def select_candidate(
    scores: Sequence[CandidateScore],
    n_layers: int,
    *,
    harmful_baseline: float | None = None,
    max_kl: float = 0.1,
    max_layer_frac: float = 0.8,
    min_drop: float = 1.0,
) -> tuple[CandidateScore, tuple[str, ...]]:
    """The candidate with the lowest bypass among those passing the filters.

    Args:
        harmful_baseline: mean refusal score of the same harmful prompts without ablation. When given
            and KL has to be relaxed, the least-KL candidate whose bypass is at least `min_drop`
            below it is chosen (module docstring); without it, the lowest bypass.

    Returns:
        (candidate, failed): `failed` names the filters the chosen candidate does not pass (empty
        when it passes them all); reports must say so.
    """
    if not scores:
        raise ValueError("no candidates to select from")
    checks = {
        "induce": lambda s: s.induce > 0,
        "kl": lambda s: s.kl < max_kl,
        "layer": lambda s: s.layer < max_layer_frac * n_layers,
    }
    for n_relaxed in range(len(RELAX_ORDER) + 1):
        relaxed = RELAX_ORDER[:n_relaxed]
        pool = [s for s in scores if all(check(s) for name, check in checks.items() if name not in relaxed)]
        if pool:
            best = min(pool, key=lambda s: s.bypass)
            if "kl" in relaxed and harmful_baseline is not None:
                effective = [s for s in pool if s.bypass <= harmful_baseline - min_drop]
                best = min(effective, key=lambda s: s.kl) if effective else best
            return best, tuple(name for name in RELAX_ORDER if not checks[name](best))
    raise AssertionError("unreachable: with every filter relaxed the pool is all candidates")

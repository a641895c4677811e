"""Choosing the layer of the refusal direction: bypass, induce and KL scores per candidate.

For each candidate layer l with direction r_l (REFERENCE.md section 1):
- bypass: mean refusal score of harmful prompts with r_l ablated everywhere (lower is better);
- induce: mean refusal score of harmless prompts with r_l added at layer l (must be > 0);
- KL: mean KL of the next-token distribution of harmless prompts under ablation (must be < 0.1);
- layer < 0.8 * n_layers.
The chosen candidate has the lowest bypass among those passing every filter; when none passes,
filters are relaxed in RELAX_ORDER and the report names the relaxed ones. All of it is forwards
only: no generation.

Relaxing KL is a trade-off, not a free-for-all. Given the harmful prompts' unablated refusal score,
a fourth filter asks that ablation *work*: lower their refusal log-odds by at least `min_drop`. On
Qwen2.5-Coder-0.5B (measured, tests/refusal/test_refusal.py) the layers under KL 0.1 (5, 7, 9) move
the score by 0.1-0.3 and barely change refusal rates (72% -> 69% at layer 5), while every layer that
works has KL 0.48-0.99, the deepest being the most destructive. So once KL has to be relaxed, the
chosen candidate is the *least-KL effective* one, not the lowest bypass overall.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


RELAX_ORDER: tuple[str, ...] = ("induce", "kl", "effective", "layer")
"""Filters dropped, in this order, when no candidate passes them all: inducing refusal is the most
expendable (small models often raise the refusal score without crossing 0); then KL, trading
disturbance of harmless prompts for a direction that works; then working at all; the depth limit
is kept longest."""


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
        harmful_baseline: mean refusal score of the same harmful prompts without ablation. When given,
            the "effective" filter (bypass at least `min_drop` below it) applies, and once KL is
            relaxed the least-KL effective candidate is chosen (module docstring).

    Returns:
        (candidate, failed): `failed` names the filters the chosen candidate does not pass (empty
        when it passes them all); reports must say so.
    """
    if not scores:
        raise ValueError("no candidates to select from")
    checks: dict[str, Callable[[CandidateScore], bool]] = {
        "induce": lambda s: s.induce > 0,
        "kl": lambda s: s.kl < max_kl,
        "layer": lambda s: s.layer < max_layer_frac * n_layers,
    }
    if harmful_baseline is not None:
        checks["effective"] = lambda s: s.bypass <= harmful_baseline - min_drop
    order = [name for name in RELAX_ORDER if name in checks]
    for n_relaxed in range(len(order) + 1):
        relaxed = order[:n_relaxed]
        pool = [s for s in scores if all(check(s) for name, check in checks.items() if name not in relaxed)]
        if pool:
            gentlest = "kl" in relaxed and "effective" in checks and "effective" not in relaxed
            best = min(pool, key=(lambda s: s.kl) if gentlest else (lambda s: s.bypass))
            return best, tuple(name for name in order if not checks[name](best))
    raise AssertionError("unreachable: with every filter relaxed the pool is all candidates")

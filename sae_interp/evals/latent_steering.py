"""Latent steering: does ablating the SAE latents closest to r remove refusal as ablating r does?

The latents whose decoder rows have the highest cosine with r are taken as the SAE's stand-ins for
r (Kissane et al., REFERENCE 2). Each one's decoder direction is ablated at every layer
(`models.interventions.Ablate`), one at a time, and the top `n_together` together (their decoder
rows are orthonormalised first, so that projecting them out one after the other removes exactly
their span). The primary measure is the mean refusal score of held-out harmful prompts (one
forward, no generation; CONVENTIONS 9); greedy generations on a small batch, judged by substring,
confirm it for the plain model, r ablated, the best latent ablated and the top latents ablated.
Ablating r itself is the reference: `fraction_of_r_effect` = (score drop under a latent) / (score
drop under r).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from sae_interp.config import ConfigError, check_positive
from sae_interp.evals._refusal import decoder_cosines
from sae_interp.models.interventions import Ablate, Intervention, generate
from sae_interp.models.loading import LoadedModel
from sae_interp.models.prompts import PromptBatch
from sae_interp.sae.base import SAE

__all__ = [
    "EVAL_TYPE_ID_LATENT_STEERING",
    "LatentSteeringConfig",
    "LatentSteeringResult",
    "evaluate_latent_steering",
    "steering_prompts",
]

EVAL_TYPE_ID_LATENT_STEERING = "latent_steering"


@dataclass(frozen=True, kw_only=True)
class LatentSteeringConfig:
    """Sizes of the latent steering evaluation (CPU defaults; raise them on a GPU)."""

    n_latents: int = 4
    """Latents with the highest decoder cosine with r, each ablated on its own."""
    n_together: int = 4
    """The top this many latents are also ablated together (0: skip)."""
    n_score_prompts: int = 32
    """Held-out harmful prompts for the refusal score."""
    n_generate: int = 8
    """The first this many of them are also generated from, for refusal rates."""
    max_new_tokens: int = 24
    """Greedy tokens per generation."""
    batch_size: int = 8
    """Prompts per forward or generation batch."""
    system_prompt: str | None = None
    """System prompt in the chat template; None keeps the model's default."""

    def __post_init__(self) -> None:  # validate only
        for name in ("n_latents", "n_score_prompts", "max_new_tokens", "batch_size"):
            check_positive("steering", name, getattr(self, name))
        for name in ("n_together", "n_generate"):
            check_positive("steering", name, getattr(self, name), allow_zero=True)
        if self.n_generate > self.n_score_prompts:
            raise ConfigError(
                f"steering.n_generate={self.n_generate} > n_score_prompts={self.n_score_prompts}"
            )


@dataclass(frozen=True)
class LatentSteeringResult:
    """Grouped metrics and one detail row per condition (baseline, r, each latent, top together)."""

    metrics: dict[str, dict[str, Any]]
    details: list[dict[str, Any]]


@dataclass(frozen=True)
class _Condition:
    name: str
    interventions: Sequence[Intervention]
    latents: tuple[int, ...] = ()
    generate: bool = False


def steering_prompts(model: LoadedModel, cfg: LatentSteeringConfig) -> PromptBatch:
    """The held-out harmful prompts (test split) the evaluation measures on."""
    from sae_interp.data import load_instructions
    from sae_interp.models.prompts import encode_chat

    return encode_chat(
        model, load_instructions("harmful", split="test")[: cfg.n_score_prompts], cfg.system_prompt
    )


def _conditions(sae: SAE, r: Tensor, cfg: LatentSteeringConfig) -> tuple[list[_Condition], Tensor]:
    cosines = decoder_cosines(sae, r)
    top = cosines.topk(min(max(cfg.n_latents, cfg.n_together), sae.cfg.d_sae)).indices.tolist()
    w_dec = sae.W_dec.detach().float().cpu()
    conditions = [
        _Condition("baseline", [], generate=True),
        _Condition("ablate_r", [Ablate(r)], generate=True),
    ]
    conditions += [
        _Condition(f"ablate_latent_{i}", [Ablate(w_dec[i])], (i,), generate=rank == 0)
        for rank, i in enumerate(top[: cfg.n_latents])
    ]
    if cfg.n_together > 1:
        together = top[: cfg.n_together]
        basis = torch.linalg.qr(w_dec[together].T.double()).Q.float()  # [d_in, n] orthonormal
        ablations = [Ablate(basis[:, j]) for j in range(basis.shape[1])]
        conditions.append(
            _Condition(f"ablate_top_{len(together)}", ablations, tuple(together), generate=True)
        )
    return conditions, cosines


@torch.inference_mode()
def evaluate_latent_steering(
    model: LoadedModel,
    sae: SAE,
    r: Tensor,
    cfg: LatentSteeringConfig | None = None,
    *,
    prompts: PromptBatch | None = None,
) -> LatentSteeringResult:
    """Refusal score (and rate) of held-out harmful prompts with SAE latents' directions ablated.

    Args:
        model: the model whose refusal direction `r` is (the SAE must match its width).
        sae: any SAE with d_in = the model's d_model.
        r: [d_model] the refusal direction at the SAE's layer.
        cfg: sizes; defaults to `LatentSteeringConfig()`.
        prompts: harmful prompts to measure on; default `steering_prompts(model, cfg)`.

    Returns:
        Metrics `refusal_score` (baseline, ablate_r, best single latent, top together, deltas and
        fractions of r's effect) and `refusal_rate` (generated conditions), and per-condition details.
    """
    from sae_interp.refusal.metrics import (
        next_token_logprobs,
        refusal_rate,
        refusal_scores,
        refusal_token_ids,
    )

    cfg = cfg or LatentSteeringConfig()
    if sae.cfg.d_in != model.spec.d_model:
        raise ValueError(f"SAE d_in={sae.cfg.d_in} but {model.spec.name} has d_model={model.spec.d_model}")
    prompts = prompts if prompts is not None else steering_prompts(model, cfg)
    token_ids = refusal_token_ids(model.tokenizer)
    conditions, cosines = _conditions(sae, r, cfg)
    details: list[dict[str, Any]] = []
    for cond in tqdm(conditions, total=len(conditions), desc="latent steering", disable=None):
        logprobs = next_token_logprobs(
            model, prompts, interventions=cond.interventions, batch_size=cfg.batch_size
        )
        row: dict[str, Any] = {
            "condition": cond.name,
            "latents": list(cond.latents),
            "decoder_cosines": [float(cosines[i]) for i in cond.latents],
            "refusal_score": float(refusal_scores(logprobs, token_ids).mean()),
            "refusal_rate": None,
        }
        if cond.generate and cfg.n_generate > 0:
            texts = generate(
                model,
                prompts.rows(0, cfg.n_generate),
                max_new_tokens=cfg.max_new_tokens,
                interventions=cond.interventions,
                batch_size=cfg.batch_size,
            )
            row["refusal_rate"] = refusal_rate(texts)
            row["generations"] = texts
        details.append(row)
    return LatentSteeringResult(_metrics(details), details)


def _metrics(details: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    by_name = {row["condition"]: row for row in details}
    base, ablate_r = by_name["baseline"]["refusal_score"], by_name["ablate_r"]["refusal_score"]
    singles = [row for row in details if len(row["latents"]) == 1]
    best = min(singles, key=lambda row: row["refusal_score"])
    together = next((row for row in details if len(row["latents"]) > 1), None)
    r_drop = base - ablate_r

    def fraction(score: float) -> float:
        return (base - score) / r_drop if r_drop != 0 else float("nan")

    score = {
        "baseline": base,
        "ablate_r": ablate_r,
        "ablate_top_latent": singles[0]["refusal_score"],
        "ablate_best_single_latent": best["refusal_score"],
        "best_single_latent": best["latents"][0],
        "fraction_of_r_effect_top_latent": fraction(singles[0]["refusal_score"]),
        "fraction_of_r_effect_best_single_latent": fraction(best["refusal_score"]),
    }
    if together is not None:
        score["ablate_top_together"] = together["refusal_score"]
        score["fraction_of_r_effect_top_together"] = fraction(together["refusal_score"])
    rates = {row["condition"]: row["refusal_rate"] for row in details if row["refusal_rate"] is not None}
    return {"refusal_score": score, "refusal_rate": rates}

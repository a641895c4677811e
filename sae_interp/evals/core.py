"""SAEBench-style core evaluation of one SAE at one residual layer, on token rows.

Per batch of rows, three full forwards with logits: clean; with the SAE spliced in at layer L
(`Splice`: the residual entering decoder layer L is replaced by the SAE's reconstruction); and
with that residual zero-ablated. Boundary decisions, stated once:

- Position 0 (BOS) is never replaced: the spliced and ablated runs keep its clean residual, and it
  is left out of every reconstruction and sparsity metric (CONVENTIONS 3; SAEBench likewise leaves
  special tokens out of reconstruction). Padding positions ("pad" rows, beyond `lengths`) are left
  out of everything.
- CE loss and KL are taken over the next-token predictions at positions 1..len-2 (the prediction at
  position 0 only sees the untouched BOS, so it is identical in all three runs).
- CE loss score = (CE_zero - CE_sae) / (CE_zero - CE_clean): 1 means the SAE costs nothing, 0 means
  it is as bad as deleting the layer's residual. KL score = 1 - KL_sae / KL_zero, both KL(clean || x).
- Reconstruction metrics pool all evaluated tokens: FVU = sum ||x - x_hat||^2 / sum ||x - mean x||^2,
  explained variance = 1 - FVU; cosine and l2 ratio (||x_hat|| / ||x||) are per-token means;
  relative reconstruction bias = sum x_hat.x_hat / sum x_hat.x (1 = no shrinkage, < 1 = shrinkage).
- Dead and dense fractions are over the evaluated tokens only: a latent is dead if it never fires
  on them and dense if it fires on more than `dense_threshold` of them.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from sae_interp.models.interventions import Splice, intervene
from sae_interp.models.loading import LoadedModel
from sae_interp.sae.base import SAE

__all__ = ["CoreEvalConfig", "CoreEvalResult", "evaluate_core"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class CoreEvalConfig:
    """Settings of the core evaluation."""

    batch_size: int = 4
    """Token rows per forward (three full forwards with logits per batch)."""
    dense_threshold: float = 0.1
    """A latent firing on more than this fraction of evaluated tokens counts as dense."""
    details: bool = True
    """Also return per-latent details (firing frequency, encoder bias and norm, enc/dec cosine)."""

    def __post_init__(self) -> None:
        if self.batch_size <= 0:
            raise ValueError(f"eval.batch_size must be > 0, got {self.batch_size}")
        if not 0 < self.dense_threshold < 1:
            raise ValueError(f"eval.dense_threshold must be in (0, 1), got {self.dense_threshold}")


@dataclass
class CoreEvalResult:
    """Metrics grouped as SAEBench groups them, per-latent details, and the counts behind them."""

    metrics: dict[str, dict[str, float]]
    details: list[dict[str, float]]
    n_tokens: int
    """Tokens in the reconstruction/sparsity metrics."""
    n_predictions: int
    """Next-token predictions in the CE/KL metrics."""
    firing_counts: Tensor = field(repr=False)
    """[d_sae] int64: evaluated tokens on which each latent fired."""


class _Sums:
    """Running sums of the reconstruction and sparsity statistics (float64)."""

    def __init__(self, d_in: int, d_sae: int):
        self.n = 0
        self.sum_x = torch.zeros(d_in, dtype=torch.float64)
        self.scalars = dict.fromkeys(
            ("x_sq", "err_sq", "cos", "norm_in", "norm_out", "ratio", "rr", "rx", "l0", "l1"), 0.0
        )
        self.firing = torch.zeros(d_sae, dtype=torch.int64)

    def add(self, x: Tensor, recon: Tensor, acts: Tensor) -> None:
        """x, recon: [n, d_in]; acts: [n, d_sae]."""
        x, recon, acts = x.double(), recon.double(), acts.double()
        norm_in, norm_out = x.norm(dim=-1), recon.norm(dim=-1)
        s = self.scalars
        s["x_sq"] += float(x.pow(2).sum())
        s["err_sq"] += float((x - recon).pow(2).sum())
        s["cos"] += float(F.cosine_similarity(x, recon, dim=-1).sum())
        s["norm_in"] += float(norm_in.sum())
        s["norm_out"] += float(norm_out.sum())
        s["ratio"] += float((norm_out / norm_in.clamp_min(1e-12)).sum())
        s["rr"] += float(recon.pow(2).sum())
        s["rx"] += float((recon * x).sum())
        s["l0"] += float((acts != 0).sum())
        s["l1"] += float(acts.abs().sum())
        self.firing += (acts != 0).sum(0).cpu()
        self.sum_x += x.sum(0).cpu()
        self.n += x.shape[0]


class _SAESplice:
    """Splice fn: reconstruct positions 1.. with the SAE (real tokens only), record statistics."""

    def __init__(self, sae: SAE, sums: _Sums):
        self.sae, self.sums = sae, sums
        self.mask: Tensor | None = None  # [B, T-1] real non-BOS positions of the current batch

    def __call__(self, x: Tensor) -> Tensor:
        assert self.mask is not None
        mask = self.mask.to(x.device)
        flat = x[:, 1:][mask]
        out = self.sae(flat)
        self.sums.add(flat, out.recon, out.acts)
        spliced = x.clone()
        body = spliced[:, 1:]
        body[mask] = out.recon.to(x.dtype)
        return spliced


def _zero_splice(x: Tensor) -> Tensor:
    out = torch.zeros_like(x)
    out[:, 0] = x[:, 0]
    return out


def _next_token_logprobs(model: LoadedModel, tokens: Tensor) -> Tensor:
    """[B, T] -> log-probabilities [B, T-1, vocab] of the predictions at positions 0..T-2 (float32)."""
    logits = model.hf(input_ids=tokens.to(model.device)).logits
    return torch.log_softmax(logits[:, :-1].float(), dim=-1)


def _ce_kl(logp: Tensor, clean: Tensor, targets: Tensor, mask: Tensor) -> tuple[float, float]:
    """Summed NLL of `targets` [B, T-1] and summed KL(clean || logp) over `mask` [B, T-1]."""
    nll = -logp.gather(-1, targets[..., None]).squeeze(-1)
    kl = (clean.exp() * (clean - logp)).sum(-1)
    return float(nll[mask].double().sum()), float(kl[mask].double().sum())


@torch.inference_mode()
def evaluate_core(
    model: LoadedModel,
    sae: SAE,
    layer: int,
    tokens: Tensor,
    *,
    lengths: Tensor | None = None,
    cfg: CoreEvalConfig | None = None,
    progress: bool = True,
) -> CoreEvalResult:
    """Evaluate `sae` at residual layer `layer` of `model` on token rows.

    Args:
        model: from `load_model`.
        sae: any SAE whose d_in equals the model's width (only `forward` is used).
        layer: the residual layer the SAE reads (input of decoder layer `layer`).
        tokens: [n_rows, ctx_len] token ids, BOS at position 0.
        lengths: [n_rows] real tokens per row (default: all).
        cfg: batch size, dense threshold, details.
        progress: show a tqdm bar over batches.

    Returns:
        The metrics in SAEBench's groups, per-latent details and token counts.

    Raises:
        ValueError: widths differ, or rows too short to predict anything after BOS.
    """
    cfg = cfg or CoreEvalConfig()
    model.spec.layer_path(layer)
    if sae.cfg.d_in != model.spec.d_model:
        raise ValueError(f"SAE d_in={sae.cfg.d_in} but {model.spec.name} has d_model={model.spec.d_model}")
    if tokens.shape[1] < 3:
        raise ValueError(f"rows need at least 3 tokens (BOS + 2) for CE after BOS, got {tokens.shape[1]}")
    lengths = lengths if lengths is not None else torch.full((tokens.shape[0],), tokens.shape[1])
    sums = _Sums(sae.cfg.d_in, sae.cfg.d_sae)
    splice = _SAESplice(sae, sums)
    totals: dict[str, float] = dict.fromkeys(("ce_clean", "ce_sae", "ce_zero", "kl_sae", "kl_zero"), 0.0)
    n_pred = 0
    starts = range(0, tokens.shape[0], cfg.batch_size)
    for start in tqdm(starts, total=len(starts), desc="core eval", disable=None if progress else True):
        batch, lens = tokens[start : start + cfg.batch_size], lengths[start : start + cfg.batch_size]
        positions = torch.arange(1, tokens.shape[1])
        splice.mask = positions[None, :] < lens[:, None]
        pred_mask = (positions[None, :] < lens[:, None] - 1)[:, :-1]  # predictions at 1..len-2
        pred_mask = torch.cat([torch.zeros_like(pred_mask[:, :1]), pred_mask], dim=1).to(model.device)
        targets = batch[:, 1:].to(model.device)
        clean = _next_token_logprobs(model, batch)
        totals["ce_clean"] += _ce_kl(clean, clean, targets, pred_mask)[0]
        for name, fn in (("sae", splice), ("zero", _zero_splice)):
            with intervene(model, [Splice(layer, fn)]):
                ce, kl = _ce_kl(_next_token_logprobs(model, batch), clean, targets, pred_mask)
            totals[f"ce_{name}"] += ce
            totals[f"kl_{name}"] += kl
        n_pred += int(pred_mask.sum())
    if sums.n == 0 or n_pred == 0:
        raise ValueError("no token to evaluate: every row is BOS or padding")
    metrics = _metrics(sums, {k: v / n_pred for k, v in totals.items()}, cfg)
    details = _details(sae, sums) if cfg.details else []
    return CoreEvalResult(metrics, details, sums.n, n_pred, sums.firing)


def _ratio(num: float, den: float) -> float:
    return num / den if den != 0 else math.nan


def _metrics(sums: _Sums, mean: dict[str, float], cfg: CoreEvalConfig) -> dict[str, dict[str, float]]:
    s, n = sums.scalars, sums.n
    total_var = s["x_sq"] - float(sums.sum_x.pow(2).sum()) / n
    fvu = _ratio(s["err_sq"], total_var)
    freq = sums.firing.double() / n
    return {
        "model_behavior_preservation": {
            "kl_div_score": 1 - _ratio(mean["kl_sae"], mean["kl_zero"]),
            "kl_div_with_ablation": mean["kl_zero"],
            "kl_div_with_sae": mean["kl_sae"],
        },
        "model_performance_preservation": {
            "ce_loss_score": _ratio(mean["ce_zero"] - mean["ce_sae"], mean["ce_zero"] - mean["ce_clean"]),
            "ce_loss_with_ablation": mean["ce_zero"],
            "ce_loss_with_sae": mean["ce_sae"],
            "ce_loss_without_sae": mean["ce_clean"],
        },
        "reconstruction_quality": {
            "explained_variance": 1 - fvu,
            "fvu": fvu,
            "mse": s["err_sq"] / (n * sums.sum_x.numel()),
            "cossim": s["cos"] / n,
        },
        "shrinkage": {
            "l2_norm_in": s["norm_in"] / n,
            "l2_norm_out": s["norm_out"] / n,
            "l2_ratio": s["ratio"] / n,
            "relative_reconstruction_bias": _ratio(s["rr"], s["rx"]),
        },
        "sparsity": {"l0": s["l0"] / n, "l1": s["l1"] / n},
        "token_stats": {"total_tokens_eval_reconstruction": n, "total_tokens_eval_sparsity_variance": n},
        "misc_metrics": {
            "dead_fraction": float((sums.firing == 0).double().mean()),
            "dense_fraction": float((freq > cfg.dense_threshold).double().mean()),
            "freq_over_1_percent": float((freq > 0.01).double().mean()),
            "freq_over_10_percent": float((freq > 0.1).double().mean()),
        },
    }


def _details(sae: SAE, sums: _Sums) -> list[dict[str, Any]]:
    w_enc, w_dec = sae.W_enc.detach().double().cpu(), sae.W_dec.detach().double().cpu()
    enc_dec_cos = F.cosine_similarity(w_enc.T, w_dec, dim=-1)
    density = (sums.firing.double() / sums.n).tolist()
    bias, norm, cos = (
        sae.b_enc.detach().double().cpu().tolist(),
        w_enc.norm(dim=0).tolist(),
        enc_dec_cos.tolist(),
    )
    return [
        {
            "index": i,
            "feature_density": density[i],
            "encoder_bias": bias[i],
            "encoder_norm": norm[i],
            "encoder_decoder_cosine_sim": cos[i],
        }
        for i in range(sae.cfg.d_sae)
    ]

"""Model-agnostic SAE training: consumes an iterable of activation batches [B, d_in].

Reading activations from a language model is the activation store's job (not here). The loop:
Adam; linear warm-up then constant or cosine decay to `lr_end`; b_dec initialised from the first
batch (geometric median or mean); per-architecture constraints (TopK: unit-norm decoder rows with
the parallel gradient removed; JumpReLU: threshold >= 0); a linear warm-up of the L1/L0
coefficient; dead-latent counters feeding TopK's AuxK loss; atomic checkpoints that resume exactly
(model, optimizer, scheduler, step, counters, RNG, history).
"""

from __future__ import annotations

import io
import itertools
import logging
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args

import torch
from torch import Tensor
from tqdm import tqdm

from sae_interp._io import atomic_write_bytes
from sae_interp.sae import metrics
from sae_interp.sae.base import SAE, SAEOutput, TrainStepInputs
from sae_interp.sae.constants import TRAINER_STATE_FILENAME

__all__ = ["TrainConfig", "TrainRecord", "TrainResult", "geometric_median", "train_sae"]

logger = logging.getLogger(__name__)

LrDecay = Literal["constant", "cosine"]
BDecInit = Literal["geometric_median", "mean", "zeros"]
_CHECKPOINT_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation settings for `train_sae`. Validated on construction."""

    total_steps: int
    """Optimizer steps (one batch each); training stops earlier if the batches run out."""
    lr: float = 3e-4
    """Peak Adam learning rate."""
    lr_end: float = 0.0
    """Learning rate at the last step when lr_decay="cosine"."""
    lr_warmup_steps: int = 0
    """Steps of linear warm-up from ~0 to lr."""
    lr_decay: LrDecay = "constant"
    """After warm-up: keep lr, or cosine-decay it to lr_end."""
    adam_betas: tuple[float, float] = (0.9, 0.999)
    """Adam (beta1, beta2)."""
    l1_coefficient: float = 1.0
    """standard: weight of sum_i f_i * ||W_dec[i]||."""
    l0_coefficient: float = 1.0
    """jumprelu: weight of the L0 penalty."""
    sparsity_warmup_steps: int = 0
    """Steps of linear warm-up of the L1/L0 coefficient from ~0."""
    jumprelu_bandwidth: float = 0.05
    """jumprelu: width of the straight-through kernel."""
    auxk_coefficient: float = 1 / 32
    """topk: weight of the AuxK loss (Gao et al.)."""
    k_aux: int | None = None
    """topk: latents in the AuxK loss; None means d_in // 2."""
    dead_tokens_threshold: int = 10_000_000
    """A latent that has not fired for this many tokens counts as dead."""
    b_dec_init: BDecInit = "geometric_median"
    """How b_dec is set from the first batch (not on resume)."""
    log_every: int = 1
    """Append a `TrainRecord` to the history every this many steps."""
    checkpoint_every: int | None = None
    """Write a checkpoint every this many steps (needs checkpoint_dir); always one at the end."""

    def __post_init__(self) -> None:  # validate only
        for name in ("total_steps", "log_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"train.{name} must be > 0, got {getattr(self, name)}")
        for name in (
            "lr_warmup_steps",
            "sparsity_warmup_steps",
            "lr_end",
            "l1_coefficient",
            "l0_coefficient",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0 or self.jumprelu_bandwidth <= 0 or self.dead_tokens_threshold <= 0:
            raise ValueError("train.lr, train.jumprelu_bandwidth and train.dead_tokens_threshold must be > 0")
        if self.lr_decay not in get_args(LrDecay):
            raise ValueError(f"train.lr_decay={self.lr_decay!r}; expected one of {get_args(LrDecay)}")
        if self.b_dec_init not in get_args(BDecInit):
            raise ValueError(f"train.b_dec_init={self.b_dec_init!r}; expected one of {get_args(BDecInit)}")
        if self.checkpoint_every is not None and self.checkpoint_every <= 0:
            raise ValueError(f"train.checkpoint_every must be > 0 or None, got {self.checkpoint_every}")
        if self.k_aux is not None and self.k_aux <= 0:
            raise ValueError(f"train.k_aux must be > 0 or None, got {self.k_aux}")
        if not all(0 <= b < 1 for b in self.adam_betas):
            raise ValueError(f"train.adam_betas must be in [0, 1), got {self.adam_betas}")


class TrainRecord(NamedTuple):
    """Metrics of one logged step (on that step's batch, before the optimizer update)."""

    step: int
    tokens: int
    loss: float
    mse: float
    l0: float
    fvu: float
    dead_fraction: float
    lr: float


@dataclass
class TrainResult:
    """What `train_sae` returns: the history for the caller to log, and where training ended."""

    history: list[TrainRecord] = field(default_factory=list)
    steps: int = 0
    tokens: int = 0
    dead_fraction: float = 0.0


@dataclass
class _State:
    """Everything besides the SAE that a checkpoint must restore."""

    optimizer: torch.optim.Adam
    scheduler: torch.optim.lr_scheduler.LambdaLR
    tokens_since_fired: Tensor
    result: TrainResult


def geometric_median(points: Tensor, *, max_iter: int = 100, tol: float = 1e-6) -> Tensor:
    """points: [N, d] -> [d], the point minimising the summed Euclidean distance (Weiszfeld)."""
    points = points.double()
    median = points.mean(0)
    for _ in range(max_iter):
        weights = 1.0 / (points - median).norm(dim=1).clamp_min(1e-12)
        new = (weights[:, None] * points).sum(0) / weights.sum()
        moved = (new - median).norm()
        median = new
        if moved <= tol * median.norm().clamp_min(1.0):
            break
    return median


def _lr_factor(cfg: TrainConfig) -> Callable[[int], float]:
    """Multiplier of cfg.lr at step s (0-based): warm-up, then constant or cosine to lr_end."""

    def factor(s: int) -> float:
        if s < cfg.lr_warmup_steps:
            return (s + 1) / cfg.lr_warmup_steps
        if cfg.lr_decay == "constant":
            return 1.0
        progress = min(1.0, (s - cfg.lr_warmup_steps) / max(1, cfg.total_steps - 1 - cfg.lr_warmup_steps))
        end = cfg.lr_end / cfg.lr
        return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


@torch.no_grad()
def _init_b_dec(sae: SAE, x: Tensor, how: BDecInit) -> None:
    """Set b_dec from the first batch, in the units the SAE sees (after norm_scaling_factor)."""
    if how == "zeros":
        return
    x = x.to(sae.device, torch.float64) * (sae.cfg.norm_scaling_factor or 1.0)
    center = geometric_median(x) if how == "geometric_median" else x.mean(0)
    sae.b_dec.copy_(center.to(sae.dtype))


def _new_state(sae: SAE, cfg: TrainConfig) -> _State:
    optimizer = torch.optim.Adam(sae.parameters(), lr=cfg.lr, betas=cfg.adam_betas)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(cfg))
    counters = torch.zeros(sae.cfg.d_sae, dtype=torch.int64, device=sae.device)
    return _State(optimizer, scheduler, counters, TrainResult())


def _loss(sae: SAE, out: SAEOutput, cfg: TrainConfig, step: int) -> Tensor:
    """Weighted sum of the SAE's loss terms at this step."""
    assert out.mse is not None  # forward was given TrainStepInputs
    loss = out.mse
    if out.sparsity is not None:
        warm = min(1.0, (step + 1) / cfg.sparsity_warmup_steps) if cfg.sparsity_warmup_steps else 1.0
        coefficient = getattr(cfg, sae.sparsity_coefficient)
        loss = loss + warm * coefficient * out.sparsity
    if out.auxk is not None:
        loss = loss + cfg.auxk_coefficient * out.auxk
    return loss


def _train_step(sae: SAE, x: Tensor, cfg: TrainConfig, state: _State) -> TrainRecord:
    """One optimizer step on batch x [B, d_in]; returns the step's metrics."""
    result = state.result
    dead = state.tokens_since_fired >= cfg.dead_tokens_threshold
    out = sae(x, TrainStepInputs(dead_mask=dead, k_aux=cfg.k_aux, bandwidth=cfg.jumprelu_bandwidth))
    loss = _loss(sae, out, cfg, result.steps)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    sae.constrain_gradients()
    lr = state.optimizer.param_groups[0]["lr"]
    state.optimizer.step()
    state.scheduler.step()
    sae.apply_constraints()

    acts = out.acts.detach().reshape(-1, sae.cfg.d_sae)
    state.tokens_since_fired += acts.shape[0]
    state.tokens_since_fired[(acts != 0).any(0)] = 0
    result.steps += 1
    result.tokens += acts.shape[0]
    result.dead_fraction = float(dead.float().mean())
    return TrainRecord(
        step=result.steps,
        tokens=result.tokens,
        loss=float(loss.detach()),
        mse=float(out.mse.detach()) if out.mse is not None else math.nan,
        l0=metrics.l0(acts),
        fvu=metrics.fvu(x.detach(), out.recon.detach()),
        dead_fraction=result.dead_fraction,
        lr=lr,
    )


def _save_checkpoint(folder: Path, sae: SAE, state: _State) -> None:
    blob = {
        "version": _CHECKPOINT_VERSION,
        "sae_config": sae.cfg.to_dict(),
        "model": sae.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "tokens_since_fired": state.tokens_since_fired,
        "steps": state.result.steps,
        "tokens": state.result.tokens,
        "dead_fraction": state.result.dead_fraction,
        "history": [list(r) for r in state.result.history],
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    buffer = io.BytesIO()
    torch.save(blob, buffer)
    atomic_write_bytes(folder / TRAINER_STATE_FILENAME, buffer.getvalue())


def _load_checkpoint(path: Path, sae: SAE, state: _State) -> None:
    blob: dict[str, Any] = torch.load(path, map_location=sae.device, weights_only=True)
    if blob.get("version") != _CHECKPOINT_VERSION:
        raise ValueError(
            f"{path}: checkpoint version {blob.get('version')!r}, expected {_CHECKPOINT_VERSION}"
        )
    if blob["sae_config"] != sae.cfg.to_dict():
        raise ValueError(f"{path}: checkpoint is for a different SAE config: {blob['sae_config']}")
    sae.load_state_dict(blob["model"])
    state.optimizer.load_state_dict(blob["optimizer"])
    state.scheduler.load_state_dict(blob["scheduler"])
    state.tokens_since_fired.copy_(blob["tokens_since_fired"])
    state.result = TrainResult(
        history=[TrainRecord(*r) for r in blob["history"]],
        steps=blob["steps"],
        tokens=blob["tokens"],
        dead_fraction=blob["dead_fraction"],
    )
    torch.set_rng_state(blob["rng_cpu"].cpu())
    if blob["rng_cuda"]:
        torch.cuda.set_rng_state_all(blob["rng_cuda"])


def train_sae(
    sae: SAE,
    batches: Iterable[Tensor],
    cfg: TrainConfig,
    *,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    skip_consumed: bool = True,
    progress: bool = True,
) -> TrainResult:
    """Train `sae` in place on activation batches.

    If `checkpoint_dir` holds a checkpoint, training resumes from it exactly. By default the first
    `step` batches of `batches` are then skipped, so pass the same stream as the first run; a
    caller whose iterable already starts after the consumed batches passes skip_consumed=False.

    Args:
        sae: the SAE to train (its architecture decides the loss terms and constraints).
        batches: iterable of activations [B, d_in], any float dtype, on any device.
        cfg: optimisation settings.
        checkpoint_dir: folder for `trainer_state.pt`; written every cfg.checkpoint_every steps and
            at the end.
        skip_consumed: on resume, skip the batches the checkpointed run already used.
        progress: show a tqdm bar (also off when stderr is not a terminal).

    Returns:
        The history (every cfg.log_every steps), steps and tokens done, final dead fraction.

    Raises:
        ValueError: a checkpoint for a different SAE config, or batches of the wrong width.
    """
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    state = _new_state(sae, cfg)
    if folder is not None and (folder / TRAINER_STATE_FILENAME).is_file():
        _load_checkpoint(folder / TRAINER_STATE_FILENAME, sae, state)
        logger.info("resumed SAE training from %s at step %d", folder, state.result.steps)
    start = state.result.steps
    stream = itertools.islice(batches, start if skip_consumed else 0, None)
    sae.train()
    with tqdm(
        total=cfg.total_steps, initial=start, desc="train sae", disable=None if progress else True
    ) as bar:
        for x in itertools.islice(stream, max(0, cfg.total_steps - start)):
            if state.result.steps == 0:
                _init_b_dec(sae, x, cfg.b_dec_init)
            record = _train_step(sae, x.to(sae.device), cfg, state)
            if record.step % cfg.log_every == 0 or record.step == cfg.total_steps:
                state.result.history.append(record)
                bar.set_postfix(loss=f"{record.loss:.4g}", l0=f"{record.l0:.1f}", fvu=f"{record.fvu:.3f}")
            bar.update()
            if folder is not None and cfg.checkpoint_every and record.step % cfg.checkpoint_every == 0:
                _save_checkpoint(folder, sae, state)
    if state.result.steps < cfg.total_steps:
        logger.warning("batches ran out after %d of %d steps", state.result.steps, cfg.total_steps)
    if folder is not None:
        _save_checkpoint(folder, sae, state)
    sae.eval()
    return state.result

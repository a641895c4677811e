"""Train one SAE on a model's residual stream, evaluate it, and save it in the SAELens format.

    python -m sae_interp.experiments.train_sae                       # Qwen, layer 13, CPU defaults
    python -m sae_interp.experiments.train_sae --model gemma-3-270m --layer 6 --data web
    python -m sae_interp.experiments.train_sae --config run.toml --set d_sae=8192

Steps: tokenise `data` into rows of `ctx_len` tokens (BOS first); read the residual entering
decoder layer `layer` once into an activation store (under the user cache, keyed by model, layer,
data, ctx_len, tokens and store settings; a finished store is reused, a killed one resumes);
train for `epochs` passes over the stored tokens (position 0 left out); save the SAE folder
(`<out>/sae`, SAELens format, metadata with model, hook name, module path, layer, context size,
dataset and provenance incl. GGUF sha256 and transformers version); run the core evaluation on
`n_eval_rows` held-out rows that follow the training rows and write `<out>/core_eval_results.json`
(SAEBench style). The resolved config goes to `<out>/config.json`.

CPU defaults (2 cores, Qwen2.5-Coder-0.5B at layer 13): 50k tokens (the forward to layer 13 runs
at ~140 tok/s on 2 AVX2 cores: ~6 min to write the store), d_sae 4096, TopK k=32, 4 epochs of
1024-token batches, 16 eval rows of 128 tokens; about 10 minutes in all. That is a usable but small
SAE (expect FVU well above what a 100M-token run reaches).

Larger settings for a GPU (bf16 model, tokens/s from REFERENCE section 8):
    --set model.device='"cuda"' --n-tokens 50000000 --d-sae 32768 --set epochs=1 \
    --set batch_size=4096 --set lr=2e-4 --set forward_batch_size=64 --set n_eval_rows=512 \
    --set store_dtype='"bfloat16"'
(50M tokens x 896 x 2 bytes is ~90 GB of store: use `--set store_dir=...` on a large disk.)
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import re
import sys
import time
from pathlib import Path
from typing import Any, Literal

import torch

from sae_interp._io import user_cache_dir
from sae_interp.config import ConfigError, ModelConfig, check_choice, check_positive, save_config
from sae_interp.experiments._cli import add_config_arguments, resolve_config, setup_logging

__all__ = ["TrainSAERunConfig", "main", "run"]

logger = logging.getLogger(__name__)

Arch = Literal["topk", "standard", "relu", "jumprelu"]
StoreDType = Literal["float32", "float16", "bfloat16"]
LrDecay = Literal["constant", "cosine"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainSAERunConfig:
    """Everything `train_sae` needs; every field can be set in TOML or with `--set key=value`."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    """The model whose residual stream is read (default: the embedded Qwen2.5-Coder-0.5B-Instruct)."""
    data: str = "chat"
    """Data set name (chat, web) or path of the user's own file."""
    layer: int = 13
    """Residual layer L: the input of decoder layer L (SAELens blocks.L.hook_resid_pre)."""
    ctx_len: int = 128
    """Tokens per row, BOS included."""
    n_tokens: int = 50_000
    """Training token budget (rows of ctx_len; position 0 of each row is not trained on)."""
    n_eval_rows: int = 16
    """Held-out rows (after the training rows) for the core evaluation."""
    arch: Arch = "topk"
    """SAE architecture."""
    d_sae: int = 4096
    """Number of latents."""
    k: int = 32
    """Active latents per token (topk only)."""
    batch_size: int = 1024
    """Training tokens per optimizer step."""
    epochs: int = 4
    """Passes over the stored activations."""
    lr: float = 1e-3
    """Peak Adam learning rate."""
    lr_warmup_steps: int = 20
    """Linear learning-rate warm-up."""
    lr_decay: LrDecay = "cosine"
    """After warm-up: constant, or cosine decay to lr / 10."""
    l1_coefficient: float = 5.0
    """standard/relu: L1 weight (on activations scaled by decoder-row norms)."""
    l0_coefficient: float = 1e-3
    """jumprelu: L0 weight."""
    sparsity_warmup_steps: int = 50
    """Linear warm-up of the L1/L0 weight."""
    keep_bos: bool = False
    """Train on position 0 too (excluded by default: its activations are outliers)."""
    store_dtype: StoreDType = "float32"
    """On-disk dtype of the activation store."""
    store_dir: str = ""
    """Activation store folder; empty = <user cache>/activations/<key>."""
    forward_batch_size: int = 8
    """Rows per model forward while filling the store."""
    eval_batch_size: int = 4
    """Rows per forward in the core evaluation."""
    seed: int = 0
    """Seeds SAE initialisation and batch shuffling."""
    out: Path = Path("saes/train_sae")
    """Run folder: sae/ (SAELens format), core_eval_results.json, config.json."""

    def __post_init__(self) -> None:  # validate only
        check_choice("train_sae", "arch", self.arch, Arch)
        check_choice("train_sae", "store_dtype", self.store_dtype, StoreDType)
        check_choice("train_sae", "lr_decay", self.lr_decay, LrDecay)
        for name in ("ctx_len", "n_tokens", "n_eval_rows", "d_sae", "k", "batch_size", "epochs", "lr"):
            check_positive("train_sae", name, getattr(self, name))
        for name in ("forward_batch_size", "eval_batch_size"):
            check_positive("train_sae", name, getattr(self, name))
        if self.layer < 0:
            raise ConfigError(f"train_sae.layer must be >= 0, got {self.layer}")
        if self.arch == "topk" and self.k > self.d_sae:
            raise ConfigError(f"train_sae.k={self.k} must be <= d_sae={self.d_sae}")

    @property
    def n_train_rows(self) -> int:
        return math.ceil(self.n_tokens / self.ctx_len)


def _store_dir(cfg: TrainSAERunConfig, spec: Any) -> Path:
    if cfg.store_dir:
        return Path(cfg.store_dir)
    key = {
        "model": spec.name,
        "provenance": spec.provenance,
        "layer": cfg.layer,
        "data": cfg.data,
        "ctx_len": cfg.ctx_len,
        "rows": cfg.n_train_rows,
        "keep_bos": cfg.keep_bos,
        "dtype": cfg.store_dtype,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{Path(spec.name).name}-L{cfg.layer}-{Path(cfg.data).name}")
    return user_cache_dir() / "activations" / f"{name}-{digest}"


def _tokens(cfg: TrainSAERunConfig, model: Any) -> Any:
    from sae_interp.data import TokenizeConfig, tokenize_rows

    tok_cfg = TokenizeConfig(ctx_len=cfg.ctx_len, bos=True, mode="pack")
    rows = tokenize_rows(cfg.data, model.tokenizer, tok_cfg, n_rows=cfg.n_train_rows + cfg.n_eval_rows)
    if rows.tokens.shape[0] <= cfg.n_eval_rows:
        raise ValueError(f"{cfg.data}: only {rows.tokens.shape[0]} rows, fewer than n_eval_rows + 1")
    return rows


def _build_sae(cfg: TrainSAERunConfig, model: Any) -> Any:
    import transformers

    from sae_interp.sae import SAEConfig, SAEMetadata, build_sae

    spec = model.spec
    metadata = SAEMetadata(
        model_name=spec.name,
        hook_name=spec.hook_name(cfg.layer),
        module_path=spec.layer_path(cfg.layer),
        layer=cfg.layer,
        context_size=cfg.ctx_len,
        dataset=cfg.data,
        provenance={**spec.provenance, "transformers_version": transformers.__version__},
        extra={"trained_with": "sae_interp.experiments.train_sae", "position_0_excluded": not cfg.keep_bos},
    )
    sae_cfg = SAEConfig(
        d_in=spec.d_model,
        d_sae=cfg.d_sae,
        architecture=cfg.arch,
        k=cfg.k if cfg.arch == "topk" else None,
        metadata=metadata,
    )
    torch.manual_seed(cfg.seed)
    return build_sae(sae_cfg, device=model.device)


def _train(cfg: TrainSAERunConfig, sae: Any, store: Any, out: Path) -> Any:
    from sae_interp.sae.train import TrainConfig, train_sae

    steps_per_epoch = store.n_tokens() // cfg.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{store.n_tokens()} stored tokens are fewer than batch_size={cfg.batch_size}")
    train_cfg = TrainConfig(
        total_steps=cfg.epochs * steps_per_epoch,
        lr=cfg.lr,
        lr_end=cfg.lr / 10 if cfg.lr_decay == "cosine" else 0.0,
        lr_warmup_steps=min(cfg.lr_warmup_steps, cfg.epochs * steps_per_epoch - 1),
        lr_decay=cfg.lr_decay,
        l1_coefficient=cfg.l1_coefficient,
        l0_coefficient=cfg.l0_coefficient,
        sparsity_warmup_steps=cfg.sparsity_warmup_steps,
        log_every=max(1, steps_per_epoch // 4),
    )
    batches = store.batches(cfg.layer, batch_size=cfg.batch_size, epochs=cfg.epochs, seed=cfg.seed)
    return train_sae(sae, batches, train_cfg, checkpoint_dir=out / "checkpoint")


def run(cfg: TrainSAERunConfig, model: Any = None) -> dict[str, Any]:
    """Tokenise, store, train, save, evaluate. Returns the summary (also written to summary.json).

    `model`, when given, is `cfg.model` already loaded: studies that train several SAEs on one
    model (dataset_transfer) load it once.
    """
    from sae_interp._io import atomic_write_json
    from sae_interp.activations import StoreConfig, build_store
    from sae_interp.evals import CoreEvalConfig, core_eval_record, evaluate_core, write_core_eval
    from sae_interp.models import load_model_from_config
    from sae_interp.sae.io import save_sae

    timings: dict[str, float] = {}
    started = time.perf_counter()
    model = model if model is not None else load_model_from_config(cfg.model)
    rows = _tokens(cfg, model)
    n_train = rows.tokens.shape[0] - cfg.n_eval_rows
    timings["load_and_tokenise_s"] = time.perf_counter() - started
    store_cfg = StoreConfig(
        layers=(cfg.layer,), keep_bos=cfg.keep_bos, dtype=cfg.store_dtype, batch_size=cfg.forward_batch_size
    )
    t0 = time.perf_counter()
    store = build_store(
        model,
        rows.tokens[:n_train],
        _store_dir(cfg, model.spec),
        store_cfg,
        lengths=rows.lengths[:n_train],
        source=cfg.data,
    )
    timings["store_s"] = time.perf_counter() - t0
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.json")
    sae = _build_sae(cfg, model)
    t0 = time.perf_counter()
    result = _train(cfg, sae, store, out)
    timings["train_s"] = time.perf_counter() - t0
    save_sae(sae, out / "sae", overwrite=True)
    t0 = time.perf_counter()
    eval_cfg = CoreEvalConfig(batch_size=cfg.eval_batch_size)
    evaluation = evaluate_core(
        model, sae, cfg.layer, rows.tokens[n_train:], lengths=rows.lengths[n_train:], cfg=eval_cfg
    )
    timings["eval_s"] = time.perf_counter() - t0
    record = core_eval_record(
        evaluation,
        sae,
        eval_cfg,
        model_name=model.spec.name,
        model_dtype=model.spec.dtype,
        dataset=cfg.data,
        context_size=cfg.ctx_len,
        n_rows=cfg.n_eval_rows,
        sae_id=str(out / "sae"),
    )
    write_core_eval(out / "core_eval_results.json", record)
    timings["total_s"] = time.perf_counter() - started
    m = evaluation.metrics
    summary = {
        "store": str(store.path),
        "store_tokens": store.n_tokens(),
        "train_steps": result.steps,
        "train_tokens": result.tokens,
        "train_tokens_per_s": result.tokens / max(timings["train_s"], 1e-9),
        "first_logged_fvu": result.history[0].fvu if result.history else None,
        "l0": m["sparsity"]["l0"],
        "fvu": m["reconstruction_quality"]["fvu"],
        "ce_loss_score": m["model_performance_preservation"]["ce_loss_score"],
        "dead_fraction": m["misc_metrics"]["dead_fraction"],
        "timings": {k: round(v, 1) for k, v in timings.items()},
    }
    atomic_write_json(out / "summary.json", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sae_interp.experiments.train_sae",
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", help="gemma-3-270m, qwen2.5-coder-0.5b-instruct, or a local path")
    parser.add_argument("--data", help="chat, web, or a path to your own file")
    parser.add_argument("--layer", type=int, help="residual layer L (input of decoder layer L)")
    parser.add_argument("--d-sae", type=int, help="number of latents")
    parser.add_argument("--arch", choices=["topk", "standard", "relu", "jumprelu"], help="architecture")
    parser.add_argument("--k", type=int, help="active latents per token (topk)")
    parser.add_argument("--n-tokens", type=int, help="training token budget")
    parser.add_argument("--out", type=Path, help="run folder")
    add_config_arguments(parser, "TrainSAERunConfig")
    args = parser.parse_args(argv)
    setup_logging()
    flags = {"model": "model.name", "data": "data", "layer": "layer", "d_sae": "d_sae", "arch": "arch"}
    cfg = resolve_config(
        parser, TrainSAERunConfig, args, flags | {"k": "k", "n_tokens": "n_tokens", "out": "out"}
    )
    summary = run(cfg)
    print(
        f"L0 {summary['l0']:.1f}  FVU {summary['fvu']:.3f}  CE loss score {summary['ce_loss_score']:.3f}  "
        f"dead {summary['dead_fraction']:.1%}  ({summary['timings']['total_s']:.0f} s)\n"
        f"SAE: {Path(cfg.out) / 'sae'}  eval: {Path(cfg.out) / 'core_eval_results.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

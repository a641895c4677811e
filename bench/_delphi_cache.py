"""Delphi's side of bench/cache.py: its LatentCache and LatentDataset on our model, SAE and tokens.

Runs with the anchors' python (`.anchors-venv/bin/python`, which has eai-delphi), never with the
package's venv, and imports nothing from sae_interp: the SAE is read from its SAELens folder with
safetensors and encoded here in plain torch, the tokens come from a safetensors file. One JSON
object goes to stdout; logs go to stderr.

    python bench/_delphi_cache.py cache --model-dir M --sae-dir S --tokens T --module model.layers.5 \
        --out DIR
    python bench/_delphi_cache.py loader --model-dir M --cache-dir DIR --module model.layers.5 \
        --latents 0 5 9 ...

`cache` times `LatentCache.run` + `save_splits` + `save_config` (the model load is not timed, as on
our side). Delphi hooks a module's output, so residual layer L is the output of decoder layer L - 1;
it runs the whole model (no early stop), keeps position 0 (BOS), and its encode function must return
dense [B, T, d_sae] latents. `loader` times building `LatentDataset` and iterating its records for
the given latents, with the sampler settings bench/cache.py gives our FeatureLoader.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

logger = logging.getLogger("bench.delphi_cache")


def load_topk_encoder(sae_dir: Path) -> Callable[[Tensor], Tensor]:
    """A dense TopK encode function from a SAELens folder written by `sae_interp.sae.io.save_sae`.

    Returns:
        fn(x [B, T, d_in]) -> latents [B, T, d_sae], zero except the k largest (after ReLU) per token.

    Raises:
        ValueError: the folder is not a plain TopK SAE (this driver encodes nothing else).
    """
    cfg = json.loads((sae_dir / "cfg.json").read_text())
    if cfg["architecture"] != "topk" or cfg.get("normalize_activations", "none") != "none":
        raise ValueError(f"{sae_dir}: need a TopK SAE without activation normalisation, got {cfg}")
    if cfg.get("rescale_acts_by_decoder_norm"):
        raise ValueError(f"{sae_dir}: rescale_acts_by_decoder_norm is not supported by this driver")
    w = load_file(str(sae_dir / "sae_weights.safetensors"))
    w_enc, b_enc, b_dec, k = w["W_enc"], w["b_enc"], w["b_dec"], int(cfg["k"])
    shift = b_dec if cfg.get("apply_b_dec_to_input", True) else torch.zeros_like(b_dec)

    def encode(x: Tensor) -> Tensor:
        pre = (x.to(w_enc.dtype) - shift) @ w_enc + b_enc
        top = pre.topk(k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter_(-1, top.indices, top.values.relu())

    return encode


def run_cache(args: argparse.Namespace) -> dict:
    """Time Delphi's LatentCache over the tokens and save its splits to `args.out`."""
    from delphi.config import CacheConfig
    from delphi.latents import LatentCache
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32).eval()
    encode = load_topk_encoder(Path(args.sae_dir))
    tokens = load_file(args.tokens)["tokens"]
    n_rows, ctx_len = tokens.shape
    out = Path(args.out)
    t0 = time.perf_counter()
    cache = LatentCache(model, {args.module: encode}, batch_size=args.batch_size)
    cache.run(tokens.numel(), tokens)
    cache.save_splits(n_splits=args.n_splits, save_dir=out)
    cfg = CacheConfig(
        batch_size=args.batch_size, cache_ctx_len=ctx_len, n_tokens=tokens.numel(), n_splits=args.n_splits
    )
    cache.save_config(save_dir=out, cfg=cfg, model_name=str(args.model_dir))
    seconds = time.perf_counter() - t0
    # Delphi silently drops the rows past the last full batch: count only what it processed
    done_rows = n_rows // args.batch_size * args.batch_size
    return {
        "what": "delphi",
        "tokens": done_rows * ctx_len,
        "tok_s": done_rows * ctx_len / seconds,
        "seconds": seconds,
        "n_nonzero": int(cache.cache.latent_locations[args.module].shape[0]),
        "peak_rss_mib": _peak_rss_mib(),
    }


def run_loader(args: argparse.Namespace) -> dict:
    """Time Delphi's LatentDataset building records for `args.latents` from its saved cache."""
    from delphi.config import ConstructorConfig, SamplerConfig
    from delphi.latents import LatentDataset
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    sampler = SamplerConfig(
        n_examples_train=args.n_train,
        n_examples_test=args.n_test,
        n_quantiles=args.n_quantiles,
        train_type="quantiles",
    )
    # center_examples=True is Delphi's fixed-window mode (the flag's meaning is inverted upstream),
    # the same non-overlapping windows our loader uses
    constructor = ConstructorConfig(
        example_ctx_len=args.example_ctx_len,
        min_examples=args.min_examples,
        n_non_activating=args.n_non_activating,
        center_examples=True,
        non_activating_source="random",
    )
    latents = torch.tensor(sorted(args.latents), dtype=torch.int64)
    t0 = time.perf_counter()
    dataset = LatentDataset(
        args.cache_dir,
        sampler,
        constructor,
        tokenizer=tokenizer,
        modules=[args.module],
        latents={args.module: latents},
    )
    records = list(dataset)
    seconds = time.perf_counter() - t0
    return {
        "what": "delphi-loader",
        "latents": len(latents),
        "records": len(records),
        "seconds": seconds,
        "latents_s": len(latents) / seconds,
        "peak_rss_mib": _peak_rss_mib(),
    }


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["cache", "loader"])
    p.add_argument("--model-dir", required=True, help="HF model folder (from_pretrained)")
    p.add_argument("--module", required=True, help="module whose output Delphi hooks, e.g. model.layers.5")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--sae-dir", help="cache: SAELens folder of a TopK SAE")
    p.add_argument("--tokens", help="cache: safetensors file with `tokens` [rows, ctx_len]")
    p.add_argument("--out", help="cache: folder for Delphi's splits")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--n-splits", type=int, default=4)
    p.add_argument("--cache-dir", help="loader: the `out` folder of a cache run")
    p.add_argument("--latents", type=int, nargs="*", default=[], help="loader: latent ids")
    p.add_argument("--example-ctx-len", type=int, default=32)
    p.add_argument("--min-examples", type=int, default=10)
    p.add_argument("--n-train", type=int, default=40)
    p.add_argument("--n-test", type=int, default=50)
    p.add_argument("--n-quantiles", type=int, default=10)
    p.add_argument("--n-non-activating", type=int, default=50)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_cache(args) if args.mode == "cache" else run_loader(args)
    print(json.dumps(result))  # the only stdout line; read by bench/cache.py
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

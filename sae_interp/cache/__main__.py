"""Command line: build a latent cache, or export one in Delphi's layout.

    python -m sae_interp.cache run --model gemma-3-270m --sae runs/sae_l6 --data wiki \\
        --n-tokens 100000 --ctx-len 128 --out cache/gemma_l6
    python -m sae_interp.cache export --delphi out/delphi cache/gemma_l6
    torchrun --nproc-per-node 2 -m sae_interp.cache run ...   # parts split across processes
"""

from __future__ import annotations

import argparse
import logging
import os

__all__ = ["main"]

logger = logging.getLogger(__name__)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in --help, and the usage examples of the docstring kept as written."""


def _parser() -> argparse.ArgumentParser:
    fmt = _Formatter
    parser = argparse.ArgumentParser(
        prog="python -m sae_interp.cache", description=__doc__, formatter_class=fmt
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="cache the nonzero latents of SAE(s) over a corpus", formatter_class=fmt)
    run.add_argument("--model", required=True, help="model name or path for load_model")
    run.add_argument(
        "--sae", action="append", required=True, help="SAE folder (repeat for several hookpoints)"
    )
    run.add_argument("--data", required=True, help="data set name or file for sae_interp.data")
    run.add_argument("--n-tokens", type=int, required=True, help="token budget (rounded up to whole rows)")
    run.add_argument("--ctx-len", type=int, default=128, help="tokens per row")
    run.add_argument("--out", required=True, help="cache folder (resumed if it exists)")
    run.add_argument(
        "--device", default=None, help="cpu, cuda (default: cuda if available; LOCAL_RANK picks the GPU)"
    )
    run.add_argument("--batch-size", type=int, default=8)
    run.add_argument("--rows-per-part", type=int, default=64)
    run.add_argument("--n-splits", type=int, default=1)
    run.add_argument("--activation-dtype", choices=["float16", "float32"], default="float16")
    run.add_argument("--latents", default=None, help="comma-separated latent ids to cache (default: all)")
    run.add_argument("--keep-bos", action="store_true", help="also cache position 0")
    export = sub.add_parser("export", help="write a cache in another tool's layout", formatter_class=fmt)
    export.add_argument("--delphi", required=True, metavar="OUT_DIR", help="write Delphi's layout here")
    export.add_argument("cache", help="native cache folder")
    return parser


def _run(args: argparse.Namespace) -> str:
    import torch

    from sae_interp.cache.config import CacheConfig
    from sae_interp.cache.writer import FeatureCache
    from sae_interp.data import TokenizeConfig, tokenize_rows
    from sae_interp.models import load_model
    from sae_interp.sae.io import load_sae

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{os.environ['LOCAL_RANK']}"
    model = load_model(args.model, device=device)
    saes = {}
    for folder in args.sae:
        sae = load_sae(folder, device=device)
        saes[sae.cfg.metadata.hook_name or sae.cfg.metadata.module_path or os.path.basename(folder)] = sae
    rows = tokenize_rows(
        args.data, model.tokenizer, TokenizeConfig(ctx_len=args.ctx_len), n_tokens=args.n_tokens
    )
    latents = tuple(int(i) for i in args.latents.split(",")) if args.latents else None
    cfg = CacheConfig(
        batch_size=args.batch_size,
        rows_per_part=args.rows_per_part,
        n_splits=args.n_splits,
        activation_dtype=args.activation_dtype,
        latents=latents,
        keep_bos=args.keep_bos,
    )
    result = FeatureCache(model, saes, cfg).run(rows.tokens, args.out, data_source=rows.source)
    rate = result.tokens_written / result.seconds if result.seconds else 0.0
    state = "complete" if result.complete else "partial (other processes still running)"
    done = f"{result.parts_written} parts, {result.tokens_written} tokens at {rate:.0f} tok/s"
    return f"{result.path}: {done}; {state}"


def _export(args: argparse.Namespace) -> str:
    from sae_interp.cache.delphi import export_delphi

    files = export_delphi(args.cache, args.delphi)
    return f"wrote {len(files)} Delphi split files under {args.delphi}"


_COMMANDS = {"run": _run, "export": _export}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    print(_COMMANDS[args.command](args))  # the CLI's final result
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Latent cache throughput and memory: the forward+encode limit vs FeatureCache, and the loader.

    python bench/cache.py                                   # gemma-3-270m, layer 6, 2 corpus sizes
    python bench/cache.py --rows 16 64 --d-sae 4096 --k 32 --ctx-len 128
    python bench/cache.py --delphi                          # also Delphi's LatentCache (anchors venv)

(a) "limit": `read_resid` stopped after the layer + `SAE.encode_sparse`, nothing kept or written.
(b) "ours": `FeatureCache.run` into a fresh folder (forward, encode, parts, manifest, statistics).
Each (what, size) runs in its own subprocess so that its peak RSS is its own; (b)'s RSS should not
grow with the corpus. The loader is then timed building records for --latents latents of the
largest cache. Tokens are random ids with BOS at position 0 (a forward costs the same for any
ids); the SAE is a random TopK SAE (seed 0). With --delphi, Delphi's `LatentCache` runs on the
same model, SAE and tokens inside `.anchors-venv/` (created, or reused and given eai-delphi).
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).parent
ROOT = HERE.parent
ANCHORS = ROOT / ".anchors-venv"
logger = logging.getLogger("bench.cache")


def _setup(args: argparse.Namespace):
    from sae_interp.models import load_model
    from sae_interp.sae import SAEConfig, SAEMetadata, build_sae

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, dtype=torch.float32, device="cpu")
    torch.manual_seed(0)
    cfg = SAEConfig(
        d_in=model.spec.d_model, d_sae=args.d_sae, k=args.k, metadata=SAEMetadata.for_layer(args.layer)
    )
    sae = build_sae(cfg)
    gen = torch.Generator().manual_seed(0)
    vocab = model.hf.get_input_embeddings().weight.shape[0]
    tokens = torch.randint(10, vocab, (args.n_rows, args.ctx_len), generator=gen)
    tokens[:, 0] = model.tokenizer.bos_token_id or 0
    return model, sae, tokens


def worker(args: argparse.Namespace) -> dict:
    """Run one measurement in this process and return it (printed as JSON by --worker)."""
    from sae_interp.cache import CacheConfig, FeatureCache
    from sae_interp.models import read_resid

    model, sae, tokens = _setup(args)
    hp = model.spec.hook_name(args.layer)
    t0 = time.perf_counter()
    if args.worker == "limit":
        with torch.inference_mode():
            for batch in read_resid(model, args.layer, tokens, batch_size=args.batch_size):
                acts = batch.acts[args.layer]
                sae.encode_sparse(acts.reshape(-1, acts.shape[-1]))
    else:
        cfg = CacheConfig(
            batch_size=args.batch_size, rows_per_part=args.rows_per_part, n_splits=args.n_splits
        )
        FeatureCache(model, {hp: sae}, cfg).run(tokens, args.out)
    seconds = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "what": args.worker,
        "tokens": tokens.numel(),
        "tok_s": tokens.numel() / seconds,
        "peak_rss_mib": peak_mib,
    }


def _spawn(args: argparse.Namespace, what: str, n_rows: int, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", what, "--n-rows", str(n_rows), "--out", str(out)]
    for name in (
        "model",
        "layer",
        "d_sae",
        "k",
        "ctx_len",
        "batch_size",
        "rows_per_part",
        "n_splits",
        "threads",
    ):
        cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{what} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_loader(path: Path, n_latents: int) -> dict:
    """Seconds to build records for the first `n_latents` latents that have enough examples."""
    from sae_interp.cache import FeatureDataset, LoaderConfig, open_cache

    index = open_cache(path)
    hp = next(iter(index.hookpoints))
    count = index.statistics(hp).count
    chosen = torch.argsort(count, descending=True)[:n_latents].tolist()
    cfg = LoaderConfig(min_examples=10, n_train=40, n_test=50, n_non_activating=50)
    t0 = time.perf_counter()
    records = list(FeatureDataset(path, cfg, {hp: chosen}))
    seconds = time.perf_counter() - t0
    return {
        "latents": len(chosen),
        "records": len(records),
        "seconds": seconds,
        "latents_s": len(chosen) / seconds,
    }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))  # read by the parent process
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        for n_rows in args.rows:
            for what in ("limit", "ours"):
                rows.append({**_spawn(args, what, n_rows, Path(tmp) / f"c{n_rows}"), "rows": n_rows})
                logger.info("%s", rows[-1])
        loader = time_loader(Path(tmp) / f"c{max(args.rows)}", args.latents)
        delphi = _delphi(args, tmp) if args.delphi else "not run (pass --delphi)"
    _report(args, rows, loader, delphi)
    return 0


def _report(args: argparse.Namespace, rows: list[dict], loader: dict, delphi: object) -> None:
    print(
        f"model {args.model}, layer {args.layer}, TopK SAE d_sae={args.d_sae} k={args.k}, "
        f"ctx {args.ctx_len}, batch {args.batch_size}, threads {args.threads or torch.get_num_threads()}"
    )
    print(
        f"{'rows':>6} {'tokens':>8} {'limit tok/s':>12} {'ours tok/s':>11} {'b/a':>6} "
        f"{'ours peak RSS MiB':>18}"
    )
    for n_rows in args.rows:
        limit = next(r for r in rows if r["rows"] == n_rows and r["what"] == "limit")
        ours = next(r for r in rows if r["rows"] == n_rows and r["what"] == "ours")
        ratio = ours["tok_s"] / limit["tok_s"]
        print(
            f"{n_rows:>6} {ours['tokens']:>8} {limit['tok_s']:>12.0f} {ours['tok_s']:>11.0f} {ratio:>6.2f} "
            f"{ours['peak_rss_mib']:>18.0f}"
        )
    print(
        f"loader: {loader['records']} records of {loader['latents']} latents in {loader['seconds']:.2f} s "
        f"({loader['latents_s']:.1f} latents/s)"
    )
    print(f"delphi: {delphi}")


def _delphi(args: argparse.Namespace, tmp: str) -> str:
    """Delphi's LatentCache in the anchors' venv; returns a line for the report, never raises.

    eai-delphi is installed only when the venv lacks it altogether: the venv may be shared with
    other anchors (sae-lens), and a second resolution could replace its torch (vllm pins one).
    """
    python = ANCHORS / "bin" / "python"
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(ANCHORS)], check=True)
        if subprocess.run([str(python), "-c", "import delphi"], capture_output=True).returncode:
            logger.info("installing eai-delphi into %s (minutes; see REFERENCE section 9)", ANCHORS)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "eai-delphi"], check=True)
        check = [str(python), "-c", "from delphi.latents import LatentCache"]
        done = subprocess.run(check, capture_output=True, text=True)
        if done.returncode:
            return f"eai-delphi does not import in {ANCHORS}: {done.stderr.strip().splitlines()[-1:]}"
    except (subprocess.CalledProcessError, OSError) as err:
        return f"could not prepare {ANCHORS}: {err}"
    return "eai-delphi imports, but the LatentCache timing driver is not written yet"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="gemma-3-270m")
    p.add_argument("--layer", type=int, default=6)
    p.add_argument("--d-sae", type=int, default=4096)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--ctx-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--rows-per-part", type=int, default=16)
    p.add_argument("--n-splits", type=int, default=4)
    p.add_argument("--rows", type=int, nargs="+", default=[16, 64], help="corpus sizes, in rows")
    p.add_argument("--latents", type=int, default=200, help="latents for the loader timing")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--delphi", action="store_true", help="also run Delphi's LatentCache (anchors venv)")
    p.add_argument("--worker", choices=["limit", "ours"], help=argparse.SUPPRESS)
    p.add_argument("--n-rows", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--out", default="", help=argparse.SUPPRESS)
    return p


if __name__ == "__main__":
    raise SystemExit(main())

"""Latent cache throughput and memory: the forward+encode limit vs FeatureCache vs Delphi, and the loader.

    python bench/cache.py                                   # gemma-3-270m, layer 6, 2 corpus sizes
    python bench/cache.py --rows 16 64 --d-sae 4096 --k 32 --ctx-len 128
    python bench/cache.py --delphi --rows 8 32 --ctx-len 64 --d-sae 1024 --latents 1000

(a) "limit": `read_resid` stopped after the layer + `SAE.encode_sparse`, nothing kept or written.
(a') "full": the same with the whole model run (Delphi never stops early), so the gain from stopping
early and the gain from the code are both visible.
(b) "ours": `FeatureCache.run` into a fresh folder (forward, encode, parts, manifest, statistics).
(c) "delphi": Delphi's `LatentCache.run` + `save_splits` + `save_config` on the same model, layer,
SAE (saved in the SAELens format and encoded in plain torch), tokens and batch size, driven by
bench/_delphi_cache.py inside `.anchors-venv/` (created, or reused and given eai-delphi).
Each (what, size) runs in its own subprocess so that its peak RSS is its own; (b)'s RSS should not
grow with the corpus. The loader is then timed building records for --latents latents (the most
frequent) of the largest cache: our FeatureLoader, the same plus the `batch_decode` of every train
and test example that Delphi's sampler does, and Delphi's LatentDataset on its own cache. Tokens
are random ids with BOS at position 0 (a forward costs the same for any ids); the SAE is a random
TopK SAE (seed 0) whose b_dec is the mean residual of another random batch, so that its latents
fire evenly. The load average is printed: on a shared CPU the numbers are indicative.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _anchors import PYTHON, prepare_delphi  # bench/ is the script directory, so on sys.path

HERE = Path(__file__).parent
ROOT = HERE.parent
DRIVER = HERE / "_delphi_cache.py"
# What `import delphi.latents` needs besides eai-delphi itself (its constructors import faiss and
# sentence_transformers at module level); vllm, also a hard dependency, is not needed for this.
DELPHI_IMPORT_DEPS = ("faiss-cpu", "sentence-transformers", "blobfile", "asyncer", "orjson")
DELPHI_CHECK = "from delphi.latents import LatentCache, LatentDataset"
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
    vocab = model.hf.get_input_embeddings().weight.shape[0]
    bos = model.tokenizer.bos_token_id or 0
    tokens = _random_tokens(args.n_rows, args.ctx_len, vocab, bos, seed=0)
    _center(model, sae, args.layer, _random_tokens(args.batch_size, args.ctx_len, vocab, bos, seed=1))
    return model, sae, tokens


def _random_tokens(n_rows: int, ctx_len: int, vocab: int, bos: int, *, seed: int) -> torch.Tensor:
    """[n_rows, ctx_len] random ids with BOS at position 0."""
    tokens = torch.randint(10, vocab, (n_rows, ctx_len), generator=torch.Generator().manual_seed(seed))
    tokens[:, 0] = bos
    return tokens


def _center(model, sae, layer: int, tokens: torch.Tensor) -> None:
    """Set b_dec to the mean residual over `tokens` (position 0 excluded).

    Uncentred, the residual's large mean dominates every random pre-activation, so about a tenth of
    the latents win the TopK on every token and the rest never fire: the loader would time mostly
    skipped latents. Centred, every latent fires at some tokens, as a trained SAE's latents do.
    """
    from sae_interp.models import read_resid

    with torch.inference_mode():
        batch = next(read_resid(model, layer, tokens, batch_size=len(tokens)))
        mean = batch.acts[layer][:, 1:].reshape(-1, sae.cfg.d_in).mean(0)
    with torch.no_grad():
        sae.b_dec.copy_(mean)


def _export(model, sae, tokens: torch.Tensor, layer: int, folder: Path) -> None:
    """Write what Delphi's driver reads: the SAE (SAELens folder), the tokens and the module to hook."""
    from safetensors.torch import save_file

    from sae_interp.sae.io import save_sae

    if layer < 1:
        raise ValueError("--delphi needs --layer >= 1: Delphi hooks the output of decoder layer L - 1")
    folder.mkdir(parents=True, exist_ok=True)
    save_sae(sae, folder / "sae", overwrite=True)
    save_file({"tokens": tokens.contiguous()}, str(folder / "tokens.safetensors"))
    meta = {"module": model.spec.layer_path(layer - 1)}
    (folder / "meta.json").write_text(json.dumps(meta))


def worker(args: argparse.Namespace) -> dict:
    """Run one measurement in this process and return it (printed as JSON by --worker)."""
    from sae_interp.cache import CacheConfig, FeatureCache
    from sae_interp.models import read_resid

    model, sae, tokens = _setup(args)
    if args.export:
        _export(model, sae, tokens, args.layer, Path(args.export))
    hp = model.spec.hook_name(args.layer)
    t0 = time.perf_counter()
    if args.worker in ("limit", "full"):
        stop = args.worker == "limit"
        with torch.inference_mode():
            for batch in read_resid(model, args.layer, tokens, batch_size=args.batch_size, stop=stop):
                acts = batch.acts[args.layer]
                sae.encode_sparse(acts.reshape(-1, acts.shape[-1]))
    else:
        cfg = CacheConfig(
            batch_size=args.batch_size, rows_per_part=args.rows_per_part, n_splits=args.n_splits
        )
        FeatureCache(model, {hp: sae}, cfg).run(tokens, args.out)
    seconds = time.perf_counter() - t0
    return {
        "what": args.worker,
        "tokens": tokens.numel(),
        "tok_s": tokens.numel() / seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _spawn(args: argparse.Namespace, what: str, n_rows: int, out: Path, export: Path | None) -> dict:
    cmd = [sys.executable, __file__, "--worker", what, "--n-rows", str(n_rows), "--out", str(out)]
    if export is not None:
        cmd += ["--export", str(export)]
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
    return _run_json(cmd, f"{what} worker")


def _run_json(cmd: list[str], label: str) -> dict:
    """Run `cmd` and parse the JSON object on the last line of its stdout."""
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{label} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _loader_config():
    from sae_interp.cache import LoaderConfig

    return LoaderConfig(min_examples=10, n_train=40, n_test=50, n_non_activating=50, n_quantiles=10)


def choose_latents(path: Path, n_latents: int) -> tuple[str, list[int], int]:
    """The hookpoint, its `n_latents` most frequent latents and its nonzero count, in the cache at `path`."""
    from sae_interp.cache import open_cache

    index = open_cache(path)
    hp = next(iter(index.hookpoints))
    count = index.statistics(hp).count
    return hp, torch.argsort(count, descending=True)[:n_latents].tolist(), int(count.sum())


def time_loader(path: Path, hp: str, chosen: list[int], tokenizer=None) -> dict:
    """Seconds for FeatureLoader to build the records of `chosen` latents.

    With a tokenizer, every train and test example is also decoded with `batch_decode`, the work
    Delphi's sampler does while it builds a record (ours leaves decoding to the explainer).
    """
    from sae_interp.cache import FeatureDataset, FeatureLoader

    records = []

    async def build() -> None:
        async for record in FeatureLoader(FeatureDataset(path, _loader_config(), {hp: chosen})):
            if tokenizer is not None:
                for example in (*record.train, *record.test):
                    tokenizer.batch_decode(example.tokens)
            records.append(record)

    # The records stay out of the coroutine's result: on Python 3.11, asyncio.run's exit check of
    # the SIGINT handler builds a repr of the main task, result included (1.3 s of tensor reprs
    # for 100 records, timed here before this was found).
    t0 = time.perf_counter()
    asyncio.run(build())
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
    load = [os.getloadavg()]
    delphi_problem = "not run (pass --delphi)"
    if args.delphi:
        delphi_problem = prepare_delphi(DELPHI_CHECK, DELPHI_IMPORT_DEPS)
    rows, loaders = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        root = Path(tmp)
        for n_rows in args.rows:
            export = root / f"in{n_rows}" if delphi_problem is None else None
            for what in ("limit", "full", "ours"):
                found = _spawn(args, what, n_rows, root / f"c{n_rows}", export if what == "ours" else None)
                rows.append({**found, "rows": n_rows})
                logger.info("%s", rows[-1])
            if delphi_problem is None:
                rows.append({**_delphi("cache", args, root, n_rows), "rows": n_rows})
                logger.info("%s", rows[-1])
        largest = max(args.rows)
        hp, chosen, nonzero = choose_latents(root / f"c{largest}", args.latents)
        loaders["ours"] = time_loader(root / f"c{largest}", hp, chosen)
        logger.info("loader %s", loaders["ours"])
        if delphi_problem is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(_model_dir(args.model))
            loaders["ours + decode"] = time_loader(root / f"c{largest}", hp, chosen, tokenizer)
            loaders["delphi"] = _delphi("loader", args, root, largest, chosen)
    load.append(os.getloadavg())
    _report(args, rows, loaders, delphi_problem, load, nonzero)
    return 0


def _model_dir(name: str) -> Path:
    """The HF folder of `name`: an embedded model's converted folder, or `name` itself."""
    from sae_interp.models.embedded import ensure_converted, resolve_embedded

    embedded = resolve_embedded(name)
    return ensure_converted(embedded) if embedded is not None else Path(name)


def _delphi(mode: str, args: argparse.Namespace, root: Path, n_rows: int, latents=()) -> dict:
    """Run bench/_delphi_cache.py in the anchors' venv; a failure becomes {"error": why}."""
    inputs = root / f"in{n_rows}"
    module = json.loads((inputs / "meta.json").read_text())["module"]
    cmd = [str(PYTHON), str(DRIVER), mode, "--model-dir", str(_model_dir(args.model))]
    cmd += ["--module", module, "--threads", str(args.threads)]
    if mode == "cache":
        cmd += ["--sae-dir", str(inputs / "sae"), "--tokens", str(inputs / "tokens.safetensors")]
        cmd += ["--out", str(root / f"d{n_rows}"), "--batch-size", str(args.batch_size)]
        cmd += ["--n-splits", str(args.n_splits)]
    else:
        cfg = _loader_config()
        cmd += ["--cache-dir", str(root / f"d{n_rows}"), "--latents", *map(str, latents)]
        cmd += ["--example-ctx-len", str(cfg.example_ctx_len), "--min-examples", str(cfg.min_examples)]
        cmd += ["--n-train", str(cfg.n_train), "--n-test", str(cfg.n_test)]
        cmd += ["--n-quantiles", str(cfg.n_quantiles), "--n-non-activating", str(cfg.n_non_activating)]
    try:
        return _run_json(cmd, f"Delphi {mode} driver")
    except (RuntimeError, ValueError, IndexError) as err:
        return {"what": "delphi", "error": str(err).strip().splitlines()[-1]}


def _report(
    args: argparse.Namespace,
    rows: list[dict],
    loaders: dict[str, dict],
    delphi_problem: str | None,
    load: list[tuple[float, float, float]],
    nonzero: int,
) -> None:
    threads = args.threads or torch.get_num_threads()
    print(
        f"model {args.model}, layer {args.layer}, TopK SAE d_sae={args.d_sae} k={args.k}, "
        f"ctx {args.ctx_len}, batch {args.batch_size}, threads {threads}, {os.cpu_count()} CPUs"
    )
    print("load average (1/5/15 min): " + ", then ".join("/".join(f"{x:.1f}" for x in la) for la in load))
    names = ("limit", "full", "ours", "delphi")
    print(f"{'':>13} {'tokens/s':^39}   {'ratios of tokens/s':^18}   {'peak RSS MiB':^31}")
    head, rss_head = " ".join(f"{x:>9}" for x in names), " ".join(f"{x:>7}" for x in names)
    print(f"{'rows':>5} {'tokens':>7} {head}   {'b/a':>5} {'b/full':>6} {'b/c':>5}   {rss_head}")
    by = {(r["rows"], r["what"]): r for r in rows}
    nan = {"tok_s": float("nan"), "peak_rss_mib": float("nan")}
    for n in args.rows:
        got = [by.get((n, x), nan) for x in names]
        got = [r if "tok_s" in r else nan for r in got]
        a, full, b, c = (r["tok_s"] for r in got)
        speeds = " ".join(f"{x:>9.0f}" for x in (a, full, b, c))
        rss = " ".join(f"{r['peak_rss_mib']:>7.0f}" for r in got)
        print(f"{n:>5} {got[2]['tokens']:>7} {speeds}   {b / a:>5.2f} {b / full:>6.2f} {b / c:>5.2f}   {rss}")
    print("tok/s; (a) limit stops after the layer, (a) full runs the whole model, as Delphi does")
    _report_delphi(args, by, loaders, delphi_problem, nonzero)


def _report_delphi(
    args: argparse.Namespace,
    by: dict[tuple[int, str], dict],
    loaders: dict[str, dict],
    delphi_problem: str | None,
    nonzero: int,
) -> None:
    largest = max(args.rows)
    for n in args.rows:
        if "error" in by.get((n, "delphi"), {}):
            print(f"delphi cache at {n} rows failed: {by[(n, 'delphi')]['error']}")
    if delphi_problem is None and "n_nonzero" in by.get((largest, "delphi"), {}):
        print(
            f"nonzero activations at {largest} rows: ours {nonzero} (position 0 excluded), "
            f"delphi {by[(largest, 'delphi')]['n_nonzero']} (position 0 kept: up to "
            f"{largest * args.k} more)"
        )
    cfg = _loader_config()
    print(
        f"loader, {args.latents} most frequent latents of the {largest}-row cache (min_examples "
        f"{cfg.min_examples}, {cfg.n_train} train / {cfg.n_test} test / {cfg.n_non_activating} "
        f"non-activating, {cfg.n_quantiles} quantiles, {cfg.example_ctx_len}-token windows):"
    )
    for name, r in loaders.items():
        if "error" in r:
            print(f"  {name:<14} failed: {r['error']}")
        else:
            rate = f"{r['seconds']:>7.2f} s  {r['latents_s']:>8.1f} latents/s"
            print(f"  {name:<14} {r['records']:>5} records  {rate}")
    delphi = loaders.get("delphi", {})
    if "seconds" in delphi:
        for name in ("ours", "ours + decode"):
            print(f"  loader ratio ({name} vs delphi): {delphi['seconds'] / loaders[name]['seconds']:.1f}x")
    if delphi_problem is not None:
        print(f"delphi: {delphi_problem}")
    _report_targets(args, by, loaders)


def _report_targets(
    args: argparse.Namespace, by: dict[tuple[int, str], dict], loaders: dict[str, dict]
) -> None:
    """The issue's targets, each checked at every corpus size (the worst size decides)."""

    def ratio(what: str, n: int) -> float:
        other = by.get((n, what), {})
        return by[(n, "ours")]["tok_s"] / other["tok_s"] if "tok_s" in other else float("nan")

    def verdict(value: float, target: float) -> str:
        return "not measured" if value != value else ("met" if value >= target else "NOT met")

    b_a, b_c = (min(ratio(what, n) for n in args.rows) for what in ("limit", "delphi"))
    delphi = loaders.get("delphi", {})
    loader = delphi["seconds"] / loaders["ours"]["seconds"] if "seconds" in delphi else float("nan")
    # The bare forward's own RSS climbs over its first ~50 batches (allocator warm-up, flat after
    # that): what the cache adds is ours minus the limit's at the same size.
    added = [by[(n, "ours")]["peak_rss_mib"] - by[(n, "limit")]["peak_rss_mib"] for n in args.rows]
    print(
        f"targets: b/a >= 0.9: {verdict(b_a, 0.9)} ({b_a:.2f}); b/c >= 2: {verdict(b_c, 2)} ({b_c:.2f}); "
        f"loader >= 3x Delphi: {verdict(loader, 3)} ({loader:.1f}x); peak RSS ours - limit "
        f"{' -> '.join(f'{x:+.0f}' for x in added)} MiB over {' -> '.join(map(str, args.rows))} rows"
    )


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
    p.add_argument("--worker", choices=["limit", "full", "ours"], help=argparse.SUPPRESS)
    p.add_argument("--n-rows", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--out", default="", help=argparse.SUPPRESS)
    p.add_argument("--export", default="", help=argparse.SUPPRESS)
    return p


if __name__ == "__main__":
    raise SystemExit(main())

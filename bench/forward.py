"""Forward throughput: raw HF forward vs our residual reader (stopped at layer L, and full), by dtype.

    python bench/forward.py                                  # both embedded models, fp32 and bf16
    python bench/forward.py --models gemma-3-270m --dtypes float32 --rows 16
    python bench/forward.py --random-weights --device cuda   # same architectures, no weights needed

Every (model, dtype) runs in its own subprocess so that its peak RSS is its own. The reference
is the plain transformers forward with logits (`model(input_ids)`), measured in the same process
on the same tokens; ratios above 1 mean faster than that reference. With --random-weights the
architecture comes from bench/model_configs/<name>.json (for a GPU machine that cannot receive
the weights); token ids are random either way, which does not change the cost of a forward.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).parent
CONFIGS = HERE / "model_configs"
DEFAULT_LAYER = {"gemma-3-270m": 9, "qwen2.5-coder-0.5b-instruct": 13}


def _load(name: str, dtype: torch.dtype, device: str, random_weights: bool):
    from sae_interp.models import load_model

    if not random_weights:
        return load_model(name, dtype=dtype, device=device)
    import shutil
    import tempfile

    from transformers import AutoConfig, AutoModelForCausalLM

    folder = Path(tempfile.mkdtemp())
    config = AutoConfig.from_pretrained(CONFIGS / name)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    for tokenizer_file in (CONFIGS / name).glob("tokenizer*"):
        shutil.copy(tokenizer_file, folder)
    return load_model(folder, dtype=dtype, device=device)


def _timed(fn, repeats: int, device: str) -> float:
    """Best wall time of `repeats` calls after one warm-up (best, not mean: the machine is shared)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def measure(args: argparse.Namespace) -> dict:
    from sae_interp.models import read_resid

    torch.set_grad_enabled(False)
    dtype = getattr(torch, args.dtype)
    model = _load(args.model, dtype, args.device, args.random_weights)
    layer = args.layer if args.layer is not None else DEFAULT_LAYER.get(args.model, model.spec.n_layers // 2)
    vocab = model.hf.get_input_embeddings().weight.shape[0]
    tokens = torch.randint(0, vocab, (args.rows, args.ctx), generator=torch.Generator().manual_seed(0))
    n_tokens = tokens.numel()

    def raw_full() -> None:
        for start in range(0, args.rows, args.batch):
            model.hf(tokens[start : start + args.batch].to(args.device))

    def ours(stop: bool):
        return lambda: [None for _ in read_resid(model, layer, tokens, batch_size=args.batch, stop=stop)]

    times = {
        "raw_full_forward": _timed(raw_full, args.repeats, args.device),
        "ours_full_forward": _timed(ours(False), args.repeats, args.device),
        "ours_stopped_at_layer": _timed(ours(True), args.repeats, args.device),
    }
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "model": args.model,
        "dtype": args.dtype,
        "device": args.device,
        "layer": layer,
        "n_layers": model.spec.n_layers,
        "tokens": n_tokens,
        "batch": args.batch,
        "ctx": args.ctx,
        "tokens_per_s": {k: n_tokens / v for k, v in times.items()},
        "ratio_to_raw_full": {k: times["raw_full_forward"] / v for k, v in times.items()},
        "peak_rss_mib": peak_kib / 1024,
        "threads": torch.get_num_threads(),
    }


def _print_table(rows: list[dict]) -> None:
    print(
        f"{'model':30} {'dtype':9} {'L':>3} {'raw full tok/s':>15} {'ours full':>10} "
        f"{'ours to L':>10} {'to-L / raw':>11} {'peak RSS MiB':>13}"
    )
    for r in rows:
        t = r["tokens_per_s"]
        print(
            f"{r['model']:30} {r['dtype']:9} {r['layer']:>3} {t['raw_full_forward']:>15.0f} "
            f"{t['ours_full_forward']:>10.0f} {t['ours_stopped_at_layer']:>10.0f} "
            f"{r['ratio_to_raw_full']['ours_stopped_at_layer']:>10.2f}x {r['peak_rss_mib']:>13.0f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_LAYER))
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--ctx", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--layer", type=int, default=None)
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "forward.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args)))
        return 0
    rows = []
    for model in args.models:
        for dtype in args.dtypes:
            cmd = [sys.executable, __file__, "--child", "--model", model, "--dtype", dtype]
            for flag in ("device", "rows", "ctx", "batch", "repeats", "layer"):
                if getattr(args, flag) is not None:
                    cmd += [f"--{flag}", str(getattr(args, flag))]
            if args.random_weights:
                cmd.append("--random-weights")
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"{model} {dtype} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    _print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))
    return 0 if rows else 1


if __name__ == "__main__":
    raise SystemExit(main())

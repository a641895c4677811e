"""Feature-effect collection throughput: batched (several steering vectors per generate call) vs a
naive loop that measures one vector at a time, same model, SAE, prompts, vectors and budget.

    python bench/effects.py                                   # gemma-3-270m, layer 6, CPU sizes
    python bench/effects.py --vectors 64 --per-batch 16 --device cuda

Both sides run `sae_interp.steering.measure_effects` in this process on the same unit directions
(SAE decoder rows of a random-init TopK SAE: the cost does not depend on the SAE's training) at a
fixed scale, greedy, so both do exactly the same work per vector; the naive side passes one vector
per call, the batched side `--per-batch` vectors (rows per call = per-batch x prompts x samples).
The reference is the naive loop; a ratio above 1 means the batched collection is faster. The
first call of each side is an untimed warm-up. Output: JSON to stdout and bench/out/effects.json,
with peak RSS (VmHWM) of the process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).parent


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _vectors_per_s(args, model, sae, prompts, directions, per_call: int) -> float:
    from sae_interp.steering import EffectsConfig, measure_effects

    cfg = EffectsConfig(
        n_samples=args.samples, max_new_tokens=args.tokens, temperature=0.0, vectors_per_batch=per_call
    )
    measure_effects(model, sae, args.layer, prompts, directions[:per_call] * args.scale, cfg, seed=0)
    start = time.perf_counter()
    for lo in range(0, directions.shape[0], per_call):
        chunk = directions[lo : lo + per_call] * args.scale
        measure_effects(model, sae, args.layer, prompts, chunk, cfg, seed=lo)
    return directions.shape[0] / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--layer", type=int, default=6)
    parser.add_argument("--vectors", type=int, default=16, help="vectors timed per side")
    parser.add_argument("--per-batch", type=int, default=8, help="vectors per call, batched side")
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=8, help="new tokens per continuation")
    parser.add_argument("--d-sae", type=int, default=4096)
    parser.add_argument("--scale", type=float, default=150.0, help="steering scale (gemma layer 6: ~+1 nat)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "effects.json")
    args = parser.parse_args(argv)

    from sae_interp.models import encode_chat, load_model
    from sae_interp.sae import SAEConfig, build_sae
    from sae_interp.steering import direction_bank

    torch.manual_seed(0)
    model = load_model(args.model, dtype=torch.float32, device=args.device)
    sae = build_sae(
        SAEConfig(d_in=model.spec.d_model, d_sae=args.d_sae, architecture="topk", k=32), device=args.device
    )
    texts = ["I think that", "Yesterday I went", "The best thing about", "My favourite place is"]
    prompts = encode_chat(model, (texts * args.prompts)[: args.prompts])
    directions = direction_bank("decoder", sae, 0, args.vectors).to(args.device)
    naive = _vectors_per_s(args, model, sae, prompts, directions, 1)
    batched = _vectors_per_s(args, model, sae, prompts, directions, args.per_batch)
    setup = {k: getattr(args, k) for k in ("model", "layer", "vectors", "per_batch", "prompts", "samples")}
    report = {
        "setup": {**setup, "tokens": args.tokens, "device": args.device, "threads": torch.get_num_threads()},
        "naive_vectors_per_s": round(naive, 4),
        "batched_vectors_per_s": round(batched, 4),
        "batched_over_naive": round(batched / naive, 2),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
    }
    text = json.dumps(report, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

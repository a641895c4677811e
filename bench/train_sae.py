"""SAE training throughput: our trainer vs SAELens' trainer, same activations, architecture and batch.

    python bench/train_sae.py                       # gemma-3-270m layer 6 activations, TopK 4096 / k 32
    python bench/train_sae.py --ours-only           # no SAELens venv needed
    python bench/train_sae.py --tokens 65536 --d-sae 16384 --batch 4096 --device cuda

Activations: residual layer `--layer` of `--model` on `chat` rows (position 0 left out), read once with
our early-stopped reader and saved to a temporary safetensors file (`acts` [N, d_in] float32). Each
trainer then runs in its own subprocess on that file, so each peak RSS is its own: ours in this
venv, SAELens in `.anchors-venv/` (created on first use: CPU torch first, then sae-lens, then the
torchvision/torchaudio/torchcodec wheels removed, REFERENCE section 9). Both train TopK with AuxK, Adam
at the same lr, constant schedule, no input normalisation, for `--steps` steps of `--batch` tokens,
cycling over the activations in the same order; tokens/s is counted over the steps after the first
`--warmup` ones (SAELens' fit has no per-step hook, so its side times `fit()` with and without the
warm-up steps and takes the difference). Output: one JSON object per side plus the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
ANCHORS = ROOT / ".anchors-venv"


def _cycle(acts: torch.Tensor, batch: int):
    """Batches in a fixed shuffled order, repeated as needed (identical for both trainers)."""
    order = torch.randperm(acts.shape[0], generator=torch.Generator().manual_seed(0))
    while True:
        for start in range(0, acts.shape[0] - batch + 1, batch):
            yield acts[order[start : start + batch]]


def _peak_rss_mib() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: on Linux a child inherits its parent's maxrss."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker_ours(args: argparse.Namespace) -> dict:
    from sae_interp.sae import SAEConfig, build_sae
    from sae_interp.sae.train import TrainConfig, train_sae

    acts = load_file(args.acts)["acts"]
    times = []
    for steps in (args.warmup, args.warmup + args.steps):
        torch.manual_seed(0)
        sae = build_sae(
            SAEConfig(d_in=acts.shape[1], d_sae=args.d_sae, architecture="topk", k=args.k), device=args.device
        )
        cfg = TrainConfig(total_steps=steps, lr=args.lr, b_dec_init="mean")
        start = time.perf_counter()
        train_sae(sae, _cycle(acts, args.batch), cfg, progress=False)
        times.append(time.perf_counter() - start)
    return {"trainer": "sae_interp", "seconds": times[1] - times[0]}


def _worker_saelens(args: argparse.Namespace) -> dict:
    from sae_lens import SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig

    acts = load_file(args.acts)["acts"]
    times = []
    for steps in (args.warmup, args.warmup + args.steps):
        torch.manual_seed(0)
        sae_cfg = TopKTrainingSAEConfig(d_in=acts.shape[1], d_sae=args.d_sae, k=args.k, device=args.device)
        trainer_cfg = SAETrainerConfig(
            total_training_samples=steps * args.batch,
            train_batch_size_samples=args.batch,
            lr=args.lr,
            lr_end=args.lr,  # must be set although it defaults to None (REFERENCE section 9)
            device=args.device,
        )
        trainer = SAETrainer(
            cfg=trainer_cfg, sae=TopKTrainingSAE(sae_cfg), data_provider=_cycle(acts, args.batch)
        )
        start = time.perf_counter()
        trainer.fit()
        times.append(time.perf_counter() - start)
    return {"trainer": "sae_lens", "seconds": times[1] - times[0]}


def _ensure_anchors_venv() -> Path:
    python = ANCHORS / "bin" / "python"
    if (
        python.exists()
        and subprocess.run([python, "-c", "import sae_lens"], capture_output=True).returncode == 0
    ):
        return python
    print("creating .anchors-venv with sae-lens (several minutes, once)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", ANCHORS], check=True)
    pip = [python, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, "sae-lens"], check=True)
    subprocess.run(
        [python, "-m", "pip", "uninstall", "-y", "torchvision", "torchaudio", "torchcodec"], check=True
    )
    return python


def _activations(args: argparse.Namespace, path: Path) -> int:
    from sae_interp.activations import iter_model_chunks
    from sae_interp.data import TokenizeConfig, tokenize_rows
    from sae_interp.models import load_model

    model = load_model(args.model, dtype=torch.float32, device=args.device)
    rows = tokenize_rows(
        "chat", model.tokenizer, TokenizeConfig(ctx_len=128), n_tokens=args.tokens * 128 // 127 + 128
    )
    start = time.perf_counter()
    acts = torch.cat(list(iter_model_chunks(model, rows.tokens, args.layer, batch_size=8)))[: args.tokens]
    print(f"read {acts.shape[0]} activations in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    save_file({"acts": acts.contiguous()}, str(path))
    return acts.shape[1]


def _run_side(python: Path | str, worker: str, args: argparse.Namespace, acts: Path) -> dict:
    cmd = [str(python), __file__, "--worker", worker, "--acts", str(acts)]
    for name in ("d_sae", "k", "batch", "steps", "warmup", "lr", "device"):
        cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    env = {**os.environ, "PYTHONPATH": ""} if worker == "saelens" else None
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["tokens_per_s"] = args.steps * args.batch / result["seconds"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--layer", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=16384, help="activations read from the model")
    parser.add_argument("--d-sae", type=int, default=4096)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=40, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed first steps")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ours-only", action="store_true", help="skip SAELens (no anchors venv)")
    parser.add_argument("--acts", type=Path, help="reuse a safetensors file with `acts` [N, d_in]")
    parser.add_argument("--worker", choices=["ours", "saelens"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        result = (_worker_ours if args.worker == "ours" else _worker_saelens)(args)
        print(json.dumps({**result, "peak_rss_mib": round(_peak_rss_mib(), 1)}))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        acts = args.acts or Path(tmp) / "acts.safetensors"
        if args.acts is None:
            _activations(args, acts)
        results = [_run_side(sys.executable, "ours", args, acts)]
        if not args.ours_only:
            results.append(_run_side(_ensure_anchors_venv(), "saelens", args, acts))
    setup = {k: getattr(args, k) for k in ("model", "layer", "d_sae", "k", "batch", "steps", "device")}
    report = {"setup": setup, "results": results}
    if len(results) == 2:
        report["ours_over_saelens"] = round(results[0]["tokens_per_s"] / results[1]["tokens_per_s"], 2)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

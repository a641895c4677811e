"""Run FeatureCache on tiny_llama from a subprocess (the kill/resume and torchrun tests use it).

python tests/cache/cache_script.py --sae SAE_DIR --out CACHE [--sleep 0.3] [--threads 2]
torchrun --nproc-per-node 2 tests/cache/cache_script.py --sae SAE_DIR --out CACHE
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import load_file

from sae_interp.cache import CacheConfig, FeatureCache, ModelSource
from sae_interp.models import load_model
from sae_interp.sae.io import load_sae

INTEROP = Path(__file__).parents[1] / "fixtures" / "interop"
HOOKPOINT = "blocks.1.hook_resid_pre"
N_ROWS = 128
CFG = CacheConfig(rows_per_part=16, n_splits=2, batch_size=8)


class SlowSource(ModelSource):
    """The model source, sleeping after each batch so that a test can kill the run mid-way."""

    def __init__(self, *args, sleep: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.sleep = sleep

    def read(self, start: int, stop: int) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        for batch in super().read(start, stop):
            time.sleep(self.sleep)
            yield batch


def tokens() -> torch.Tensor:
    return load_file(INTEROP / "tokens.safetensors")["tokens"][:N_ROWS]


def run(sae_dir: str, out: str, *, sleep: float = 0.0) -> None:
    model = load_model(INTEROP / "tiny_llama", dtype=torch.float32, device="cpu")
    cache = FeatureCache(model, {HOOKPOINT: load_sae(sae_dir)}, CFG)
    rows = tokens()
    source = SlowSource(model, cache.layers, rows, batch_size=CFG.batch_size, sleep=sleep) if sleep else None
    cache.run(rows, out, data_source="tokens.safetensors", source=source)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sae", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if "WORLD_SIZE" in os.environ:
        torch.distributed.init_process_group("gloo")
    try:
        run(args.sae, args.out, sleep=args.sleep)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()

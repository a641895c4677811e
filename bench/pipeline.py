"""Pipeline throughput against a fixed-latency, fixed-concurrency OpenAI-compatible loopback server.

    python bench/pipeline.py                                  # 200 items, 0.1 s latency, cap 16
    python bench/pipeline.py --items 1000 --latency 0.05 --cap 32 --in-flight 32

The server (tests/clients/loopback.py in benchmark mode) runs in its own process and holds every
reply `latency` seconds with at most `cap` replies in progress, so no client can exceed
cap / latency requests per second. Each item is an explain + detection + fuzzing-shaped workload:
one explain request, then a Pipe of two scorers that each send `--batches` requests at once (default
5 + 5), i.e. 1 + 2 * batches requests per item. The bound is therefore
(cap / latency) / (1 + 2 * batches) items per second; we print items/s, its ratio to that bound,
and this process's peak RSS (the server's memory is not counted).

Delphi's pipeline (eai-delphi in `.anchors-venv/`) is not compared by this script yet: the numbers
printed are ours only, against the server's theoretical limit.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the loopback server lives with the client tests

from sae_interp.clients import OpenAICompatible, SamplingParams  # noqa: E402
from sae_interp.pipeline import CountingClient, Pipe, Pipeline, RunFolder, UsageCounter  # noqa: E402
from tests.clients.loopback import LoopbackServer  # noqa: E402

PARAMS = SamplingParams(max_tokens=16)


class Explainer:
    name = "explain"

    def __init__(self, client: Any) -> None:
        self.client = client

    async def __call__(self, item: int) -> dict[str, Any]:
        gen = await self.client.chat([{"role": "user", "content": f"explain latent {item}"}], PARAMS)
        return {"latent": item, "explanation": gen.text}


class BatchScorer:
    """Sends `batches` requests at once (as detection/fuzzing send their prompt batches)."""

    def __init__(self, client: Any, name: str, batches: int) -> None:
        self.client, self.name, self.batches = client, name, batches

    async def __call__(self, explained: dict[str, Any]) -> dict[str, Any]:
        messages = [{"role": "user", "content": f"{self.name} {explained['latent']}"}]
        gens = await asyncio.gather(*(self.client.chat(messages, PARAMS) for _ in range(self.batches)))
        return {"accuracy": sum(g.text == "ok" for g in gens) / len(gens)}


async def _items(n: int):
    for i in range(n):
        yield i


async def run_ours(args: argparse.Namespace, base_url: str, out: Path) -> dict[str, float]:
    counter = UsageCounter()
    async with OpenAICompatible(base_url, "bench", max_concurrency=args.cap, max_retries=0) as raw:
        client = CountingClient(raw, counter)
        scorers = Pipe(
            BatchScorer(client, "detection", args.batches),
            BatchScorer(client, "fuzzing", args.batches),
            name="score",
        )
        pipeline = Pipeline(
            _items(args.items),
            Explainer(client),
            scorers,
            key=str,
            folder=RunFolder(out),
            max_in_flight=args.in_flight,
            total=args.items,
            usage=counter,
            progress=False,
        )
        started = time.perf_counter()
        result = await pipeline.run()
        seconds = time.perf_counter() - started
    assert result.done == args.items and not result.failed, result
    return {"seconds": seconds, "items_per_s": args.items / seconds, "requests": counter.requests}


async def serve(latency: float, cap: int) -> None:
    """Server mode: print the port, serve until stdin closes."""
    async with LoopbackServer(latency=latency, max_concurrency=cap) as server:
        print(server.port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        print(f"server max in flight: {server.max_in_flight}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--items", type=int, default=200, help="items (latents) to run")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds the server holds each reply")
    parser.add_argument("--cap", type=int, default=16, help="replies the server serves at once")
    parser.add_argument("--batches", type=int, default=5, help="requests per scorer per item")
    parser.add_argument("--in-flight", type=int, default=16, help="items in flight in the pipeline")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.latency, args.cap))
        return 0
    logging.basicConfig(level=logging.WARNING)
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--latency", str(args.latency), "--cap", str(args.cap)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        base_url = f"http://127.0.0.1:{int(server.stdout.readline())}/v1"
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with tempfile.TemporaryDirectory() as out:
            ours = asyncio.run(run_ours(args, base_url, Path(out)))
        server.stdin.close()
    finally:
        server.wait(timeout=10)
    per_item = 1 + 2 * args.batches
    limit = args.cap / args.latency / per_item
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"items={args.items} latency={args.latency}s cap={args.cap} requests/item={per_item} "
        f"in_flight={args.in_flight}\n"
        f"limit: {limit:.2f} items/s ({args.cap / args.latency:.0f} requests/s)\n"
        f"ours:  {ours['items_per_s']:.2f} items/s = {ours['items_per_s'] / limit:.2f} x limit "
        f"({ours['seconds']:.1f} s, {ours['requests']:.0f} requests)\n"
        f"peak RSS: {peak:.0f} MiB (before the run: {rss_before:.0f} MiB)\n"
        "delphi: not compared by this script yet"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

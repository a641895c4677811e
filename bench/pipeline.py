"""Pipeline throughput, ours against Delphi's, on one fixed-latency, fixed-concurrency loopback server.

    python bench/pipeline.py                         # 100 latents, 0.25 s latency, cap 256, 16 in flight
    python bench/pipeline.py --cap 32 --no-delphi    # ours only; a server that is the bottleneck

The server (tests/clients/loopback.py in benchmark mode) runs in its own process and holds every
reply `latency` seconds with at most `cap` replies in progress, so no client can exceed
cap / latency requests per second. Each latent is Delphi's default explain + detection + fuzzing
workload: one explain request, then two scorers that each send `--batches` prompts (Delphi's
defaults: 50 activating + 50 non-activating test examples, 5 per prompt = 20), i.e.
1 + 2 * batches requests per latent. The limit is therefore (cap / latency) / (1 + 2 * batches)
latents per second. The default cap, 256, is vLLM's default `max_num_seqs`.

Both pipelines get the same server, latents and latents in flight (`--in-flight`, Delphi's
`Pipeline.run(max_concurrent)`). Ours runs here with explain/score functions shaped like our
explainer and scorers; Delphi's runs in `.anchors-venv/` (bench/_delphi_pipeline.py) with its own
Pipeline, OpenRouter client, DefaultExplainer, DetectionScorer and FuzzingScorer on placeholder
examples. We print latents/s for each, their ratio to the limit, our ratio to Delphi, and each
process's peak RSS (the server's is not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
from tests.clients.loopback import LoopbackServer, RecordedRequest, Reply, Respond, chat_body  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from _anchors import PYTHON, prepare_delphi  # noqa: E402

DELPHI_DRIVER = ROOT / "bench" / "_delphi_pipeline.py"
# The driver's --help imports all it needs (after standing in for vllm); these are the modules
# eai-delphi imports at module level without declaring them all.
DELPHI_CHECK = f"import runpy, sys; sys.argv = ['-', '--help']; runpy.run_path({str(DELPHI_DRIVER)!r})"
DELPHI_IMPORT_DEPS = ("aiofiles", "tiktoken")
# Delphi's scorers show 5 examples per prompt and parse a list of 5 labels.
N_SHOWN = 5

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
    concurrency = args.client_concurrency or args.cap
    async with OpenAICompatible(base_url, "bench", max_concurrency=concurrency, max_retries=0) as raw:
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


def _parseable_reply(request: RecordedRequest) -> Reply:
    """What Delphi parses: an explanation for its explainer's prompt, else N_SHOWN labels."""
    asks_for_explanation = "[EXPLANATION]" in json.dumps((request.json or {}).get("messages", []))
    text = "[EXPLANATION]: the word 'the'" if asks_for_explanation else str([1, 0] * (N_SHOWN // 2) + [1])
    return Reply(body=chat_body(text))


async def serve(latency: float, cap: int) -> None:
    """Server mode: print the port, serve until stdin closes."""
    default = Respond(_parseable_reply)
    async with LoopbackServer(default=default, latency=latency, max_concurrency=cap) as server:
        print(server.port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        print(f"server max in flight: {server.max_in_flight}", file=sys.stderr)


def run_delphi(args: argparse.Namespace, base_url: str) -> dict[str, Any]:
    """Delphi's pipeline in the anchors' venv; {"error": why} when it cannot run."""
    problem = prepare_delphi(DELPHI_CHECK, DELPHI_IMPORT_DEPS)
    if problem is not None:
        return {"error": problem}
    cmd = [str(PYTHON), str(DELPHI_DRIVER), "--base-url", base_url, "--items", str(args.items)]
    cmd += ["--batches", str(args.batches), "--n-shown", str(N_SHOWN), "--in-flight", str(args.in_flight)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        return {"error": f"{DELPHI_DRIVER.name} exited {done.returncode}: {done.stderr.strip()[-2000:]}"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["items_per_s"] = result["items"] / result["seconds"]
    return result


def main(argv: list[str] | None = None) -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--items", type=int, default=100, help="latents to run through each pipeline")
    parser.add_argument("--latency", type=float, default=0.25, help="seconds the server holds each reply")
    parser.add_argument("--cap", type=int, default=256, help="replies the server serves at once")
    parser.add_argument("--batches", type=int, default=20, help="prompts per scorer per latent")
    parser.add_argument("--in-flight", type=int, default=16, help="latents in flight, in both pipelines")
    parser.add_argument(
        "--client-concurrency",
        type=int,
        default=0,
        help="our client's request limit (default: --cap); above the cap the server queues the rest",
    )
    parser.add_argument("--no-delphi", action="store_true", help="run ours only")
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
        delphi: dict[str, Any] = {"error": "not run (--no-delphi)"}
        if not args.no_delphi:
            delphi = run_delphi(args, base_url)
        server.stdin.close()
    finally:
        server.wait(timeout=10)
    per_item = 1 + 2 * args.batches
    limit = args.cap / args.latency / per_item
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"latents={args.items} latency={args.latency}s cap={args.cap} requests/latent={per_item} "
        f"in_flight={args.in_flight} client_concurrency={args.client_concurrency or args.cap}\n"
        f"limit:  {limit:.2f} latents/s ({args.cap / args.latency:.0f} requests/s)\n"
        f"ours:   {ours['items_per_s']:.2f} latents/s = {ours['items_per_s'] / limit:.2f} x limit "
        f"({ours['seconds']:.1f} s, {ours['requests']:.0f} requests, peak RSS {peak:.0f} MiB, "
        f"{rss_before:.0f} MiB before the run)"
    )
    if "error" in delphi:
        print(f"delphi: {delphi['error']}")
    else:
        print(
            f"delphi: {delphi['items_per_s']:.2f} latents/s = {delphi['items_per_s'] / limit:.2f} x limit "
            f"({delphi['seconds']:.1f} s, {delphi['scored']}/{delphi['items']} scored, "
            f"peak RSS {delphi['peak_rss_mib']:.0f} MiB)\n"
            f"ours / delphi: {ours['items_per_s'] / delphi['items_per_s']:.1f}x",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

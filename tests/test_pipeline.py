"""The pipeline against the loopback OpenAI-compatible server, through a real `OpenAICompatible` client."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from sae_interp.clients import ClientConfig, OpenAICompatible, SamplingParams
from sae_interp.pipeline import (
    CountingClient,
    Failed,
    Pipe,
    Pipeline,
    RunFolder,
    RunFolderMismatch,
    UsageCounter,
    process_wrapper,
)
from tests.clients.loopback import LoopbackServer, RecordedRequest, Reply, Respond, chat_body, error_reply

TESTS = Path(__file__).parent
PARAMS = SamplingParams(max_tokens=8)


def item_of(request: RecordedRequest) -> int:
    return int(request.json["messages"][0]["content"].split()[-1])


def failing_for(bad: set[int]) -> Respond:
    """200 "ok" for every item except those in `bad`, which get a 500 every time."""

    def answer(request: RecordedRequest) -> Reply:
        if item_of(request) in bad:
            return error_reply(500, "boom")
        return Reply(body=chat_body(f"explained {item_of(request)}"))

    return Respond(answer)


class Explain:
    """A minimal explainer: one chat request per item."""

    name = "explain"

    def __init__(self, client: Any) -> None:
        self.client = client

    async def __call__(self, item: int) -> dict[str, Any]:
        gen = await self.client.chat([{"role": "user", "content": f"explain item {item}"}], PARAMS)
        return {"item": item, "explanation": gen.text}


class Score:
    """A minimal scorer: one request about the explanation, a fixed accuracy."""

    def __init__(self, client: Any, name: str, accuracy: float) -> None:
        self.client, self.name, self.accuracy = client, name, accuracy

    async def __call__(self, explained: dict[str, Any]) -> dict[str, Any]:
        await self.client.chat([{"role": "user", "content": f"score item {explained['item']}"}], PARAMS)
        return {"accuracy": self.accuracy, "n": 10}


def item_files(folder: Path) -> dict[str, Any]:
    return {p.stem: orjson.loads(p.read_bytes()) for p in (folder / "items").glob("*.json")}


def client_for(server: LoopbackServer, **kwargs: Any) -> OpenAICompatible:
    return OpenAICompatible(server.base_url, "m", max_retries=0, max_concurrency=64, **kwargs)


async def test_bounded_in_flight_and_lazy_pulling(tmp_path: Path) -> None:
    pulled = finished = 0
    worst_gap = 0

    async def source():
        nonlocal pulled
        for i in range(24):
            pulled += 1
            yield i

    async def track(out: dict[str, Any]) -> dict[str, Any]:
        nonlocal finished, worst_gap
        worst_gap = max(worst_gap, pulled - finished)
        finished += 1
        return out

    async with LoopbackServer(latency=0.05) as server, client_for(server) as client:
        pipeline = Pipeline(
            source(),
            process_wrapper(Explain(client), postprocess=track),
            key=str,
            folder=RunFolder(tmp_path),
            max_in_flight=4,
        )
        result = await pipeline.run()
    assert result.done == 24 and not result.failed
    assert server.max_in_flight == 4  # the client allows 64: the pipeline is what bounds it
    summary = orjson.loads((tmp_path / "summary.json").read_bytes())
    assert summary["counts"]["max_in_flight"] == 4
    assert worst_gap <= 4  # items are pulled only when a worker is free
    assert len(item_files(tmp_path)) == 24


async def test_failures_are_isolated_and_recorded(tmp_path: Path) -> None:
    async with LoopbackServer(default=failing_for({3, 7})) as server, client_for(server) as client:
        result = await Pipeline(range(12), Explain(client), key=str, folder=RunFolder(tmp_path)).run()
    assert result.done == 10 and {f.key for f in result.failed} == {"3", "7"}
    assert result.failure_frac == pytest.approx(2 / 12)
    lines = [orjson.loads(x) for x in (tmp_path / "failures.jsonl").read_bytes().splitlines()]
    assert sorted(x["key"] for x in lines) == ["3", "7"]
    assert all(x["stage"] == "explain" and x["error"].startswith("ServerError") for x in lines)
    assert all(x["schema_version"] == 1 for x in lines)
    files = item_files(tmp_path)
    assert sorted(files, key=int) == [str(i) for i in range(12) if i not in (3, 7)]
    assert files["5"]["stages"]["explain"] == {"item": 5, "explanation": "explained 5"}


async def test_resume_redoes_only_failed_items_and_compacts_failures(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    async with LoopbackServer(default=failing_for({2})) as server, client_for(server) as client:
        first = await Pipeline(range(6), Explain(client), key=str, folder=folder).run()
    assert [f.key for f in first.failed] == ["2"]
    async with LoopbackServer() as server, client_for(server) as client:
        second = await Pipeline(range(6), Explain(client), key=str, folder=folder).run()
        assert [item_of(r) for r in server.requests] == [2]
    assert (second.done, second.skipped, second.failed) == (1, 5, ())
    assert (tmp_path / "failures.jsonl").read_bytes() == b""  # item 2 finished: its failure is stale
    assert folder.failures() == []


async def test_pipe_fans_out_concurrently_and_summarises_metrics(tmp_path: Path) -> None:
    counter = UsageCounter()
    async with LoopbackServer(latency=0.2) as server, client_for(server) as raw:
        client = CountingClient(raw, counter)
        scores = Pipe(Score(client, "detection", 0.8), Score(client, "fuzzing", 0.6), name="score")
        pipeline = Pipeline(
            [1, 2], Explain(client), scores, key=str, folder=RunFolder(tmp_path), usage=counter
        )
        started = time.monotonic()
        result = await pipeline.run()
        elapsed = time.monotonic() - started
    assert result.done == 2
    # per item: explain (0.2 s) then both scorers at once (0.2 s); items run side by side
    assert server.max_in_flight == 4 and elapsed < 0.8
    stages = item_files(tmp_path)["1"]["stages"]
    assert stages["score"] == {"detection": {"accuracy": 0.8, "n": 10}, "fuzzing": {"accuracy": 0.6, "n": 10}}
    summary = orjson.loads((tmp_path / "summary.json").read_bytes())
    assert summary["schema_version"] == 1 and summary["status"] == "finished"
    assert summary["counts"] == {"done": 2, "skipped": 0, "failed": 0, "max_in_flight": 2}
    assert summary["metrics"]["score.detection.accuracy"] == pytest.approx(0.8)
    assert summary["metrics"]["score.fuzzing.accuracy"] == pytest.approx(0.6)
    assert summary["metrics"]["explain.item"] == pytest.approx(1.5)
    assert set(summary["stages"]) == {"explain", "score"} and summary["stages"]["score"]["calls"] == 2
    assert summary["usage"] == {"requests": 6, "prompt_tokens": 30, "completion_tokens": 6}


async def test_pipe_failure_names_the_failing_stage(tmp_path: Path) -> None:
    async def detection(x: int) -> dict[str, float]:
        return {"accuracy": 1.0}

    async def fuzzing(x: int) -> dict[str, float]:
        raise ValueError(f"cannot parse {x}")

    async def nothing(x: int) -> None:
        return None

    result = await Pipeline(
        [1], Pipe(detection, fuzzing, name="score"), key=str, folder=RunFolder(tmp_path / "a")
    ).run()
    assert result.failed == (Failed("1", "score/fuzzing", "ValueError: cannot parse 1"),)
    result = await Pipeline([1], nothing, key=str, folder=RunFolder(tmp_path / "b")).run()
    assert result.failed[0].stage == "nothing" and "returned None" in result.failed[0].error
    with pytest.raises(ValueError, match="distinct names"):
        Pipe(detection, detection)


async def test_process_wrapper_hooks(tmp_path: Path) -> None:
    seen: list[Any] = []

    async def double(x: int) -> int:
        return 2 * x

    async def async_post(result: int) -> dict[str, int]:
        return {"value": result}

    stage = process_wrapper(double, preprocess=lambda x: x + 1, postprocess=async_post)
    observer = process_wrapper(double, preprocess=seen.append)  # returns None: input kept
    assert getattr(stage, "name", None) == "double"
    assert await stage(3) == {"value": 8}
    assert await observer(5) == 10 and seen == [5]
    failing = process_wrapper(double, postprocess=lambda r: 1 / 0)
    result = await Pipeline([1], failing, key=str, folder=RunFolder(tmp_path)).run()
    assert result.failed[0].stage == "double" and result.failed[0].error.startswith("ZeroDivisionError")


async def test_cancellation_leaves_a_consistent_folder(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    async with LoopbackServer(latency=0.1) as server, client_for(server) as client:
        task = asyncio.create_task(Pipeline(range(20), Explain(client), key=str, folder=folder).run())
        while len(list(tmp_path.glob("items/*.json"))) < 5:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    files = item_files(tmp_path)
    summary = orjson.loads((tmp_path / "summary.json").read_bytes())
    assert summary["status"] == "cancelled" and summary["counts"]["done"] == len(files) < 20
    assert all(v["stages"]["explain"]["item"] == int(k) for k, v in files.items())
    assert not list(tmp_path.rglob(".tmp-*"))
    async with LoopbackServer() as server, client_for(server) as client:
        result = await Pipeline(range(20), Explain(client), key=str, folder=folder).run()
        assert sorted(item_of(r) for r in server.requests) == sorted(set(range(20)) - {int(k) for k in files})
    assert result.skipped == len(files) and len(item_files(tmp_path)) == 20


KILLED_RUN = """
import asyncio, signal, sys
# A shell that starts jobs in the background (nohup, CI runners) makes them ignore SIGINT, and Python
# then keeps ignoring it: restore Ctrl-C's KeyboardInterrupt so the test means the same everywhere.
signal.signal(signal.SIGINT, signal.default_int_handler)
from tests.clients.loopback import LoopbackServer
from sae_interp.clients import OpenAICompatible
from sae_interp.pipeline import Pipeline, RunFolder
from tests.test_pipeline import Explain

async def main():
    # 60 items x 0.2 s / 3 in flight: a 4 s run, so that a signal sent after the 8th item lands
    # mid-run even on a loaded CI machine (at 0.05 s the run could finish first).
    async with LoopbackServer(latency=0.2) as server:
        async with OpenAICompatible(server.base_url, "m", max_retries=0) as client:
            await Pipeline(range(60), Explain(client), key=str, folder=RunFolder(sys.argv[1]),
                           max_in_flight=3, progress=False).run()

asyncio.run(main())
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill", "ctrl-c"])
async def test_resume_after_a_killed_run_finishes_every_item_exactly_once(tmp_path: Path, sig: int) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED_RUN), str(tmp_path)], env=env, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("items/*.json"))) < 8:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        proc.send_signal(sig)
    finally:
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode != 0, "the run finished before the signal reached it"
    before = item_files(tmp_path)
    if sig == signal.SIGINT:  # Ctrl-C: asyncio.run cancels the run, which still writes its summary
        assert b"KeyboardInterrupt" in stderr
        summary = orjson.loads((tmp_path / "summary.json").read_bytes())
        assert summary["status"] == "cancelled" and summary["counts"]["done"] == len(before)
    assert 8 <= len(before) < 60
    async with LoopbackServer() as server, client_for(server) as client:
        result = await Pipeline(range(60), Explain(client), key=str, folder=RunFolder(tmp_path)).run()
        redone = [item_of(r) for r in server.requests]
    assert sorted(redone) == sorted(set(range(60)) - {int(k) for k in before})  # no item twice
    assert result.skipped == len(before) and result.done == 60 - len(before)
    after = item_files(tmp_path)
    assert sorted(after, key=int) == [str(i) for i in range(60)]
    assert all(after[k] == before[k] for k in before)  # nothing finished was rewritten
    assert not list(tmp_path.rglob(".tmp-*"))


async def test_no_secrets_in_run_folder_or_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-test-4f9a8b7c6d5e"
    monkeypatch.setenv("SAE_TEST_KEY", secret)
    caplog.set_level(logging.DEBUG)
    async with LoopbackServer(default=failing_for({1})) as server:
        cfg = ClientConfig(kind="openai", model="m", base_url=server.base_url, api_key_env="SAE_TEST_KEY")
        async with client_for(server, api_key_env="SAE_TEST_KEY") as client:
            config = {"client": cfg, "extra": {"api_key": secret, "hf_token": secret, "n": 3}}
            folder = RunFolder(tmp_path)
            await Pipeline(range(3), Explain(client), key=str, folder=folder, config=config).run()
        assert server.requests[0].headers["authorization"] == f"Bearer {secret}"  # the key was in use
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["config"]["client"]["api_key_env"] == "SAE_TEST_KEY"
    assert written["config"]["extra"] == {"n": 3}
    assert written["pipeline"] == {"stages": ["explain"], "max_in_flight": 16}
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(), path
    assert secret not in caplog.text and "failed in stage explain" in caplog.text


async def test_source_error_stops_the_run_and_is_summarised(tmp_path: Path) -> None:
    async def broken():
        yield 1
        raise OSError("cache shard missing")

    async def ok(x: int) -> int:
        return x

    with pytest.raises(ExceptionGroup) as info:
        await Pipeline(broken(), ok, key=str, folder=RunFolder(tmp_path), max_in_flight=1).run()
    assert info.group_contains(OSError)
    summary = orjson.loads((tmp_path / "summary.json").read_bytes())
    assert summary["status"] == "error" and summary["counts"]["done"] == 1


def test_item_paths_stay_inside_the_run_folder(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path, item_path=lambda key: f"latents/{key}.json")
    assert folder.item_file("layers.6/12") == tmp_path / "latents/layers.6/12.json"
    with pytest.raises(ValueError, match="outside the run folder"):
        folder.item_file("../escape")


async def test_a_key_twice_in_the_source_is_processed_once(tmp_path: Path) -> None:
    calls: list[int] = []

    async def slow(x: int) -> int:
        calls.append(x)
        await asyncio.sleep(0.05)
        return x

    result = await Pipeline([1, 1, 2, 1], slow, key=str, folder=RunFolder(tmp_path)).run()
    assert sorted(calls) == [1, 2] and result.done == 2


async def test_resuming_with_another_config_is_refused(tmp_path: Path) -> None:
    async def double(x: int) -> int:
        return 2 * x

    await Pipeline(range(3), double, key=str, folder=RunFolder(tmp_path), config={"model": "a"}).run()
    again = await Pipeline(range(3), double, key=str, folder=RunFolder(tmp_path), config={"model": "a"},
                           max_in_flight=2).run()  # fmt: skip
    assert again.skipped == 3  # how many run at once does not change results
    with pytest.raises(RunFolderMismatch, match="differs in: model"):
        await Pipeline(range(3), double, key=str, folder=RunFolder(tmp_path), config={"model": "b"}).run()
    assert json.loads((tmp_path / "config.json").read_text())["config"] == {"model": "a"}

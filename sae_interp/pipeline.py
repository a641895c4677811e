"""Run items through async stages with a bounded number in flight, writing one JSON file per item.

    pipeline = Pipeline(
        loader,                                   # any (async) iterable of items
        process_wrapper(explainer, postprocess=log_explanation),
        Pipe(detection, fuzzing, name="score"),   # both scorers get the explanation, concurrently
        key=lambda record: record.name,
        folder=RunFolder("explanations/run1"),
    )
    result = asyncio.run(pipeline.run())
    sys.exit(1 if result.failure_frac > 0.1 else 0)

Each stage is `async (input) -> output`; the first stage gets the item, each later one the previous
stage's output. A `Pipe(*stages)` gives one input to several stages at once and returns
`{name: output}`. How many requests a stage sends at once is the stage's business (and its client's
semaphore's); the pipeline only bounds the items in flight.

Boundary decisions:
- Items are pulled from the source only when a worker is free, so memory stays flat however many
  items there are. The pipeline knows nothing about latents: it needs `key(item) -> str`, unique per
  item, which names the item's file.
- A stage that raises (after its client's retries) fails only its item: a `Failed(key, stage,
  error)` goes to failures.jsonl and the run goes on. A stage that returns None fails too: None is
  never a result. Errors of the source itself stop the run.
- An item's file is written only when every stage has finished, in one atomic write on the event
  loop thread (not in a worker thread), so cancellation can never interrupt it: after Ctrl-C or a
  kill, every item file is complete and every missing one is redone by the next run.
- Results must be JSON-serialisable by orjson (dicts, lists, numbers, strings, dataclasses, numpy).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import math
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from tqdm.asyncio import tqdm

from sae_interp._runfolder import SCHEMA_VERSION, Failed, RunFolder, RunFolderMismatch, redact
from sae_interp.clients.base import ClientCapabilities, Generation, LLMClient, Message, SamplingParams

__all__ = [
    "SCHEMA_VERSION",
    "CountingClient",
    "Failed",
    "Pipe",
    "Pipeline",
    "RunFolder",
    "RunFolderMismatch",
    "RunResult",
    "Stage",
    "UsageCounter",
    "as_async_iterable",
    "len_or_none",
    "process_wrapper",
    "stage_name",
]

logger = logging.getLogger(__name__)

Stage = Callable[[Any], Awaitable[Any]]
Hook = Callable[[Any], Any]
"""A pre/post-processing hook: sync or async; its return value replaces the value, None keeps it."""

_METRIC_DEPTH = 3


def stage_name(stage: Any) -> str:
    """A stage's name: its `name` attribute, else its function name, else its class name."""
    name = getattr(stage, "name", None)
    if isinstance(name, str) and name:
        return name
    fn_name = getattr(stage, "__name__", None)
    if isinstance(fn_name, str) and fn_name != "<lambda>":
        return fn_name
    return type(stage).__name__


class StageError(Exception):
    """Raised by `Pipe` when one of its stages fails, so that the failure names that stage."""

    def __init__(self, stage: str, error: BaseException) -> None:
        super().__init__(f"{stage}: {type(error).__name__}: {error}")
        self.stage = stage
        self.error = error


class Pipe:
    """Give one input to several stages concurrently and collect `{stage name: output}`.

    If one stage fails, the others are cancelled and the failure names the failing stage.
    """

    def __init__(self, *stages: Stage, name: str | None = None) -> None:
        """Args:
        stages: the stages; their names (see `stage_name`) must differ.
        name: the pipe's name in failures and metrics; default the stage names joined by "+".

        Raises:
            ValueError: no stages, or two stages share a name.
        """
        names = [stage_name(s) for s in stages]
        if not stages or len(set(names)) != len(names):
            raise ValueError(f"Pipe needs stages with distinct names, got {names}")
        self.stages = dict(zip(names, stages, strict=True))
        self.name = name or "+".join(names)

    async def __call__(self, value: Any) -> dict[str, Any]:
        async def one(name: str, stage: Stage) -> Any:
            try:
                return _checked(name, await stage(value))
            except StageError as err:
                raise StageError(f"{name}/{err.stage}", err.error) from err.error
            except Exception as err:
                raise StageError(name, err) from err

        try:
            async with asyncio.TaskGroup() as group:
                tasks = {name: group.create_task(one(name, s)) for name, s in self.stages.items()}
        except* StageError as errors:
            raise errors.exceptions[0] from None
        return {name: task.result() for name, task in tasks.items()}


class _Wrapped:
    def __init__(self, stage: Stage, preprocess: Hook | None, postprocess: Hook | None) -> None:
        self.stage, self.preprocess, self.postprocess = stage, preprocess, postprocess
        self.name = stage_name(stage)

    async def __call__(self, value: Any) -> Any:
        if self.preprocess is not None:
            value = await _apply_hook(self.preprocess, value)
        result = await self.stage(value)
        if self.postprocess is not None:
            result = await _apply_hook(self.postprocess, result)
        return result


def process_wrapper(stage: Stage, preprocess: Hook | None = None, postprocess: Hook | None = None) -> Stage:
    """Wrap `stage` with hooks run before and after it; the stage's name is kept.

    Args:
        stage: any stage (also a `Pipe`).
        preprocess: called with the stage's input; its return value (unless None) replaces it.
        postprocess: called with the stage's output; its return value (unless None) replaces it.
            Hooks may be plain functions or coroutine functions; an exception in a hook fails the
            item like an exception in the stage.
    """
    return _Wrapped(stage, preprocess, postprocess)


async def _apply_hook(hook: Hook, value: Any) -> Any:
    out = hook(value)
    if inspect.isawaitable(out):
        out = await out
    return value if out is None else out


def _checked(name: str, output: Any) -> Any:
    if output is None:
        raise TypeError(f"stage {name!r} returned None; a stage must return a result or raise")
    return output


@dataclasses.dataclass
class UsageCounter:
    """Requests and tokens, reported by `CountingClient` (or by stages calling `record`)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def record(self, generation: Generation) -> None:
        self.requests += 1
        if generation.usage is not None:
            self.prompt_tokens += generation.usage.prompt_tokens
            self.completion_tokens += generation.usage.completion_tokens

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class CountingClient:
    """An `LLMClient` that forwards every call to `client` and records it in `counter`."""

    def __init__(self, client: LLMClient, counter: UsageCounter) -> None:
        self.client, self.counter = client, counter

    @property
    def capabilities(self) -> ClientCapabilities:
        return self.client.capabilities

    async def chat(self, messages: Sequence[Message], params: SamplingParams) -> Generation:
        generation = await self.client.chat(messages, params)
        self.counter.record(generation)
        return generation

    async def complete(self, prompt: str, params: SamplingParams) -> Generation:
        generation = await self.client.complete(prompt, params)
        self.counter.record(generation)
        return generation

    async def aclose(self) -> None:
        await self.client.aclose()


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunResult:
    """What one `Pipeline.run` did."""

    done: int
    """Items finished and written in this run."""
    skipped: int
    """Items already complete from an earlier run."""
    failed: tuple[Failed, ...]
    """Items that failed in this run."""
    seconds: float
    status: str
    """"finished" or "cancelled"."""

    @property
    def failure_frac(self) -> float:
        """Failed / attempted in this run (0 when nothing was attempted)."""
        attempted = self.done + len(self.failed)
        return len(self.failed) / attempted if attempted else 0.0


class _Stats:
    """Running counts and sums of one run (constant memory in the number of items)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.done = self.skipped = 0
        self.failed: list[Failed] = []
        self.active: set[str] = set()
        """Keys in flight."""
        self.max_in_flight = 0
        self.stage_seconds: dict[str, float] = {}
        self.stage_calls: dict[str, int] = {}
        self.metric_sums: dict[str, float] = {}
        self.metric_counts: dict[str, int] = {}

    def add_stage(self, name: str, seconds: float, output: Any) -> None:
        self.stage_seconds[name] = self.stage_seconds.get(name, 0.0) + seconds
        self.stage_calls[name] = self.stage_calls.get(name, 0) + 1
        for metric, value in _numeric_leaves(output, name, _METRIC_DEPTH):
            self.metric_sums[metric] = self.metric_sums.get(metric, 0.0) + value
            self.metric_counts[metric] = self.metric_counts.get(metric, 0) + 1

    def means(self) -> dict[str, float]:
        return {m: self.metric_sums[m] / self.metric_counts[m] for m in sorted(self.metric_sums)}


def _numeric_leaves(obj: Any, prefix: str, depth: int) -> Iterable[tuple[str, float]]:
    """Finite int/float values (not bools) under dicts, dataclasses, pydantic models and NamedTuples."""
    if isinstance(obj, int | float) and not isinstance(obj, bool):
        if math.isfinite(obj):
            yield prefix, float(obj)
        return
    if depth == 0:
        return
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    elif isinstance(obj, BaseModel):
        obj = obj.model_dump()
    elif isinstance(obj, tuple) and hasattr(obj, "_asdict"):
        obj = obj._asdict()  # type: ignore[attr-defined]  # a NamedTuple
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _numeric_leaves(v, f"{prefix}.{k}", depth - 1)


class Pipeline:
    """Items -> stage -> stage -> ... -> one JSON file per item, with failures isolated per item.

    Example:
        >>> result = asyncio.run(Pipeline(records, explain, Pipe(detect, fuzz), key=str, folder=f).run())
    """

    def __init__(
        self,
        source: AsyncIterable[Any] | Iterable[Any],
        *stages: Stage,
        key: Callable[[Any], str],
        folder: RunFolder,
        max_in_flight: int = 16,
        total: int | None = None,
        config: Any = None,
        usage: UsageCounter | None = None,
        to_json: Callable[[Any, dict[str, Any]], Mapping[str, Any]] | None = None,
        progress: bool = True,
    ) -> None:
        """Args:
        source: the items, pulled lazily (an async iterator such as a FeatureLoader, or any iterable).
        stages: the stages in order; their names (see `stage_name`) must differ.
        key: item -> unique key; names the item's file and its failures.
        folder: where config, summary, failures and items go.
        max_in_flight: items being processed at once at most.
        total: number of items for the progress bar; default `len(source)` when it has one.
        config: the resolved run config (dataclass or mapping) for config.json; secrets removed.
        usage: counter fed by the stages' clients (see `CountingClient`): shown and summarised.
        to_json: (item, {stage name: output}) -> the item file's content; default
            `{"stages": outputs}`.
        progress: show a progress bar (tqdm; off anyway when stderr is not a terminal).

        Raises:
            ValueError: no stages, duplicate stage names, or max_in_flight < 1.
        """
        names = [stage_name(s) for s in stages]
        if not stages or len(set(names)) != len(names):
            raise ValueError(f"Pipeline needs stages with distinct names, got {names}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self.source, self.key, self.folder = source, key, folder
        self.stages = list(zip(names, stages, strict=True))
        self.max_in_flight = max_in_flight
        self.total = total if total is not None else len_or_none(source)
        self.config, self.usage, self.progress = config, usage, progress
        self.to_json = to_json or (lambda _item, outputs: {"stages": outputs})

    async def run(self) -> RunResult:
        """Process every item not already complete in the folder; write the summary at the end.

        Returns:
            Counts of this run; `failure_frac` lets a CLI choose its exit code.

        Raises:
            RunFolderMismatch: the folder holds items of a run with another config.
            asyncio.CancelledError: the run was cancelled (Ctrl-C); finished items and the summary
                (status "cancelled") are on disk, in-flight items are not.
            ExceptionGroup: the source raised (wrapped by the run's TaskGroup; the summary says
                status "error").
        """
        self.folder.prepare()
        config = {"pipeline": self._describe(), "config": redact(self.config)}
        self.folder.check_config(config)
        self.folder.write_config(config)
        stats = _Stats()
        bar = tqdm(total=self.total, desc="items", unit="item", disable=None if self.progress else True)
        lock = asyncio.Lock()
        status = "error"
        try:
            async with _aiter(self.source) as items, asyncio.TaskGroup() as group:
                for _ in range(self.max_in_flight):
                    group.create_task(self._worker(items, lock, stats, bar))
            status = "finished"
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        finally:
            bar.close()
            self.folder.compact_failures()
            self.folder.write_summary(self._summary(stats, status))
            logger.info(
                "pipeline %s: %d done, %d skipped, %d failed in %.1f s",
                status, stats.done, stats.skipped, len(stats.failed), time.monotonic() - stats.started,
            )  # fmt: skip
        return RunResult(
            done=stats.done,
            skipped=stats.skipped,
            failed=tuple(stats.failed),
            seconds=time.monotonic() - stats.started,
            status=status,
        )

    def _describe(self) -> dict[str, Any]:
        return {"stages": [name for name, _ in self.stages], "max_in_flight": self.max_in_flight}

    async def _worker(self, items: AsyncIterator[Any], lock: asyncio.Lock, stats: _Stats, bar: Any) -> None:
        while True:
            async with lock:  # one puller at a time: an async generator cannot be entered twice
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    return
            key = self.key(item)
            if key in stats.active:  # two workers must never write one file
                logger.warning("key %r appears twice in the source; the second is skipped", key)
            elif self.folder.is_complete(key):
                stats.skipped += 1
            else:
                stats.active.add(key)
                stats.max_in_flight = max(stats.max_in_flight, len(stats.active))
                try:
                    await self._process(key, item, stats)
                finally:
                    stats.active.discard(key)
            bar.update()
            bar.set_postfix(self._postfix(stats), refresh=False)

    async def _process(self, key: str, item: Any, stats: _Stats) -> None:
        value, outputs, seconds = item, {}, {}
        for name, stage in self.stages:
            started = time.monotonic()
            try:
                value = _checked(name, await stage(value))
            except StageError as err:
                return self._fail(Failed(key, f"{name}/{err.stage}", _describe_error(err.error)), stats)
            except Exception as err:  # CancelledError is not an Exception: cancelling still works
                return self._fail(Failed(key, name, _describe_error(err)), stats)
            outputs[name], seconds[name] = value, time.monotonic() - started
        try:
            self.folder.write_item(key, self.to_json(item, outputs))
        except TypeError as err:  # orjson cannot serialise a result
            return self._fail(Failed(key, "write", _describe_error(err)), stats)
        stats.done += 1
        for name, output in outputs.items():
            stats.add_stage(name, seconds[name], output)

    def _fail(self, failed: Failed, stats: _Stats) -> None:
        logger.warning("item %s failed in stage %s: %s", failed.key, failed.stage, failed.error)
        stats.failed.append(failed)
        self.folder.append_failure(failed)

    def _postfix(self, stats: _Stats) -> dict[str, Any]:
        postfix: dict[str, Any] = {"failed": len(stats.failed)}
        if self.usage is not None:
            elapsed = max(time.monotonic() - stats.started, 1e-9)
            postfix["req/s"] = f"{self.usage.requests / elapsed:.1f}"
            postfix["tokens"] = self.usage.tokens
        return postfix

    def _summary(self, stats: _Stats, status: str) -> dict[str, Any]:
        seconds = time.monotonic() - stats.started
        summary: dict[str, Any] = {
            "status": status,
            "counts": {
                "done": stats.done,
                "skipped": stats.skipped,
                "failed": len(stats.failed),
                "max_in_flight": stats.max_in_flight,
            },
            "timing": {"seconds": seconds, "items_per_second": stats.done / seconds if seconds else 0.0},
            "stages": {
                name: {"calls": calls, "mean_seconds": stats.stage_seconds[name] / calls}
                for name, calls in stats.stage_calls.items()
            },
            "metrics": stats.means(),
        }
        if self.usage is not None:
            summary["usage"] = dataclasses.asdict(self.usage)
        return summary


def _describe_error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def len_or_none(source: object) -> int | None:
    """`len(source)` for a sized source (progress bars show a total), else None."""
    try:
        return len(source)  # type: ignore[arg-type]  # any Sized source
    except TypeError:
        return None


@contextlib.asynccontextmanager
async def _aiter(source: AsyncIterable[Any] | Iterable[Any]) -> AsyncIterator[AsyncIterator[Any]]:
    """An async iterator over `source`, closed (async generators: `aclose`) when the block ends."""
    iterator = aiter(as_async_iterable(source))
    try:
        yield iterator
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


def as_async_iterable(source: AsyncIterable[Any] | Iterable[Any]) -> AsyncIterable[Any]:
    """`source` itself when it is async-iterable, else an async generator over it."""
    return source if isinstance(source, AsyncIterable) else _from_sync(iter(source))


async def _from_sync(iterator: Iterable[Any]) -> AsyncIterator[Any]:
    for item in iterator:
        yield item

"""Dynamic batching: concurrent requests share one engine call, under a supervisor.

One worker thread owns the engine (sessions are not shared between threads); requests wait in
a bounded queue on the event loop and are merged into batches of at most ``max_batch`` items.

What can go wrong stays with the request that caused it:
- the queue holds at most ``max_queue`` items: one more is refused at once (``Overloaded``, a 503
  with ``Retry-After``), and a request still queued after ``queue_timeout_s`` is dropped the same
  way, as Triton's and OVMS's queue policies do; a request whose client has gone is never run;
- an engine error on a merged batch re-runs its requests one by one, so only the failing one fails;
- an error outside a lone request (the engine on its own, the merge, a callback) marks the worker
  unhealthy, fails what was in flight, and restarts it: a new engine thread, a warm-up inference
  retried with back-off, and healthy again only once that succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edgeft.serve.errors import BatcherStopped, ClientGone, EngineFailure, Overloaded

Inputs = Mapping[str, np.ndarray]


class Rows(Protocol):
    """What the engine call returns, cut by rows into each request's share (an array, or the
    predictor's outputs, ``TaskOutputs``)."""

    def __getitem__(self, rows: slice) -> Rows: ...


log = logging.getLogger("edgeft.serve")

_BACKOFF_S = (0.1, 0.5, 1.0, 2.0, 5.0)


@dataclass
class _Pending:
    inputs: Inputs
    size: int
    deadline: float
    future: asyncio.Future[Rows]


def merge_inputs(parts: Sequence[Inputs]) -> dict[str, np.ndarray]:
    """Stack requests along the batch axis; shorter trailing axes (token sequences) are
    zero-padded to the longest, which is what an attention mask of zeros means."""
    merged = {}
    for name in parts[0]:
        arrays = [part[name] for part in parts]
        if all(a.shape[1:] == arrays[0].shape[1:] for a in arrays):
            merged[name] = np.concatenate(arrays)
            continue
        trailing = tuple(max(dims) for dims in zip(*(a.shape[1:] for a in arrays), strict=True))
        out = np.zeros((sum(len(a) for a in arrays), *trailing), dtype=arrays[0].dtype)
        row = 0
        for a in arrays:
            out[(slice(row, row + len(a)), *(slice(0, d) for d in a.shape[1:]))] = a
            row += len(a)
        merged[name] = out
    return merged


@dataclass(frozen=True)
class BatcherHooks:
    """What the batcher reports: each engine call, and each worker failure and restart."""

    on_batch: Callable[[int, float], None] = lambda size, seconds: None
    on_failure: Callable[[str], None] = lambda kind: None
    warm_up: Callable[[], None] = lambda: None


class DynamicBatcher:
    """``await submit(inputs)`` returns ``run(inputs)`` for just those rows."""

    def __init__(
        self,
        run: Callable[[Inputs], Rows],
        max_batch: int,
        max_wait_s: float,
        max_queue: int = 64,
        queue_timeout_s: float = 10.0,
        hooks: BatcherHooks | None = None,
    ) -> None:
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self._hooks = hooks or BatcherHooks()
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._queued_items = 0
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._carry: _Pending | None = None
        self.healthy = False
        self.restarts = 0
        self._closing = False

    @property
    def queued_items(self) -> int:
        return self._queued_items

    def start(self, warm: bool = False) -> None:
        """Start the worker; ``warm`` when the caller has already run the warm-up (healthy at
        once, so a model switched in takes its first request without a 503)."""
        if warm:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="edgeft-engine")
            self.healthy = True
        self._task = asyncio.get_running_loop().create_task(self._supervise(warm))

    async def stop(self) -> None:
        """Finish what is queued, then stop the worker (at once if it is not warm)."""
        if self._task is None:
            return
        self._closing = True
        if self.healthy:
            self._queue.put_nowait(None)
        else:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        self._stop_executor()

    async def submit(
        self, inputs: Inputs, client_gone: Callable[[], Awaitable[None]] | None = None
    ) -> Rows:
        """Queue ``inputs``; ``client_gone()`` completes when the client disconnects (made only
        once the request is queued, so a refused request leaves no waiter behind)."""
        if self._task is None or self._closing:
            raise BatcherStopped("this model version is no longer serving")
        size = len(next(iter(inputs.values())))
        if self._queued_items + size > self.max_queue:
            raise Overloaded(f"the server's queue is full ({self.max_queue} items); retry shortly")
        loop = asyncio.get_running_loop()
        pending = _Pending(
            inputs, size, time.monotonic() + self.queue_timeout_s, loop.create_future()
        )
        self._queued_items += size
        self._queue.put_nowait(pending)
        if client_gone is None:
            return await pending.future
        watcher = asyncio.ensure_future(client_gone())
        try:
            waited: set[asyncio.Future[Any]] = {pending.future, watcher}
            await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
        if not pending.future.done():
            pending.future.cancel()  # the worker skips it
            raise ClientGone("the client disconnected before its request ran")
        return pending.future.result()

    async def _supervise(self, warm: bool) -> None:
        """Run the worker; on any failure, restart it until it warms up again."""
        if not warm:
            await self._restart(first=True)
        while True:
            try:
                if await self._work():
                    break
            except Exception as exc:
                log.exception("inference worker failed; restarting it", exc_info=exc)
                self._hooks.on_failure("worker")
                await self._restart()
        self._stop_executor()

    async def _restart(self, first: bool = False) -> None:
        """A fresh engine thread, then a warm-up inference, retried with back-off."""
        self.healthy = False
        if not first:
            self.restarts += 1
        attempt = 0
        while True:
            self._stop_executor()
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="edgeft-engine")
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._executor, self._hooks.warm_up
                )
            except Exception as exc:
                delay = _BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)]
                log.error("warm-up inference failed (%s); retrying in %.1f s", exc, delay)
                self._hooks.on_failure("warm-up")
                attempt += 1
                await asyncio.sleep(delay)
                continue
            self.healthy = True
            return

    def _stop_executor(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    async def _work(self) -> bool:
        """Batch and run until told to stop (True) or an engine fault needs a restart."""
        while True:
            first = self._carry or await self._queue.get()
            self._carry = None
            if first is None:
                return True
            batch, stopping = await self._collect(first)
            self._queued_items -= sum(p.size for p in batch)
            try:
                await self._execute(batch)
            except BaseException as exc:
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(EngineFailure(f"inference failed ({exc})"))
                raise
            if stopping:
                return True

    async def _collect(self, first: _Pending) -> tuple[list[_Pending], bool]:
        """Requests up to ``max_batch`` items, waiting at most ``max_wait_s`` for them."""
        batch, size = [first], first.size
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if item is None:
                return batch, True
            if size + item.size > self.max_batch:
                self._carry = item
                break
            batch.append(item)
            size += item.size
        return batch, False

    async def _execute(self, batch: list[_Pending]) -> None:
        now = time.monotonic()
        for p in batch:
            if not p.future.done() and now > p.deadline:
                p.future.set_exception(
                    Overloaded(f"queued longer than {self.queue_timeout_s:g} s; retry shortly")
                )
        live = [p for p in batch if not p.future.done()]  # gone clients, expired requests
        if not live:
            return
        try:
            outputs = await self._call([p.inputs for p in live])
        except Exception:
            if len(live) == 1:
                raise  # the engine fails on its own: restart it
            await self._isolate(live)
            return
        row = 0
        for p in live:
            if not p.future.done():
                p.future.set_result(outputs[row : row + p.size])
            row += p.size

    async def _call(self, parts: list[Inputs]) -> Rows:
        merged = merge_inputs(parts)
        started = time.perf_counter()
        outputs = await asyncio.get_running_loop().run_in_executor(
            self._executor, self._run, merged
        )
        self._hooks.on_batch(
            sum(len(next(iter(p.values()))) for p in parts), time.perf_counter() - started
        )
        return outputs

    async def _isolate(self, live: list[_Pending]) -> None:
        """Re-run a failed batch's requests one by one: only those that fail alone fail."""
        failures = 0
        for p in live:
            if p.future.done():
                continue
            try:
                p.future.set_result(await self._call([p.inputs]))
            except Exception as exc:
                failures += 1
                self._hooks.on_failure("request")
                log.warning("inference failed for one request of a batch: %s", exc)
                p.future.set_exception(EngineFailure(f"inference failed on this input ({exc})"))
        if failures == len(live):
            raise EngineFailure("every request of the batch failed on its own")

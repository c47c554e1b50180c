"""Dynamic batching: concurrent requests share one engine call.

One worker thread owns the engine (sessions are not shared between threads); requests queue
on the event loop and are merged into batches of at most ``max_batch`` items.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

Inputs = Mapping[str, np.ndarray]


@dataclass
class _Pending:
    inputs: Inputs
    size: int
    future: asyncio.Future[np.ndarray]


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


class DynamicBatcher:
    """``await submit(inputs)`` returns ``run(inputs)`` for just those rows."""

    def __init__(
        self,
        run: Callable[[Inputs], np.ndarray],
        max_batch: int,
        max_wait_s: float,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="edgeft-engine")
        self._task: asyncio.Task[None] | None = None
        self._carry: _Pending | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Finish what is queued, then stop the worker."""
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    async def submit(self, inputs: Inputs) -> np.ndarray:
        if self._task is None:
            raise RuntimeError("the batcher is not running")
        size = len(next(iter(inputs.values())))
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(inputs, size, future))
        return await future

    async def _loop(self) -> None:
        while True:
            first = self._carry or await self._queue.get()
            self._carry = None
            if first is None:
                return
            batch, stopping = await self._collect(first)
            await self._execute(batch)
            if stopping:
                return

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
        live = [p for p in batch if not p.future.done()]  # a client may have gone away
        if not live:
            return
        merged = merge_inputs([p.inputs for p in live])
        started = time.perf_counter()
        try:
            outputs = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._run, merged
            )
        except Exception as exc:
            for p in live:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        if self._on_batch is not None:
            self._on_batch(sum(p.size for p in live), time.perf_counter() - started)
        row = 0
        for p in live:
            if not p.future.done():
                p.future.set_result(outputs[row : row + p.size])
            row += p.size

"""Group commit: many callers' work done in one database transaction.

A transaction per order caps throughput at the rate one hot row (an agent's
balance, an event's allotment) can be locked, updated and committed. A
`GroupCommitter` lets each caller `submit` its item and wait, while one runner
task takes everything queued so far and hands it to `process` as one batch.
While a batch commits, new arrivals queue up, so batches grow with load and
an idle system adds no delay: there is no timer.

The queue is bounded: when it is full, `submit` refuses at once with `Busy`
(503 + Retry-After) instead of letting callers pile up without end.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from kaquan.kit.errors import Busy
from kaquan.kit.futures import answer_all

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    future: asyncio.Future[R] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommitter(Generic[T, R]):
    """Runs submitted items through `process` in batches; `process` answers each item in order."""

    def __init__(
        self,
        process: Callable[[list[T]], Awaitable[list[R | Exception]]],
        *,
        max_batch: int = 256,
        max_queue: int = 10_000,
        name: str = "batch",
    ) -> None:
        self._process = process
        self._max_batch = max_batch
        self._max_queue = max_queue
        self._name = name
        self._queue: list[_Waiting[T, R]] = []
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def depth(self) -> int:
        """Items waiting for a batch."""
        return len(self._queue)

    async def submit(self, item: T) -> R:
        if self._closing:
            raise Busy(f"{self._name} is shutting down", retry_after=1)
        if len(self._queue) >= self._max_queue:
            raise Busy(f"{self._name} queue is full", retry_after=1)
        waiting: _Waiting[T, R] = _Waiting(item)
        self._queue.append(waiting)
        self._wake.set()
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name=f"group-commit:{self._name}")
        return await asyncio.shield(waiting.future)

    async def close(self) -> None:
        """Finish the queued work and stop the runner."""
        self._closing = True
        self._wake.set()
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    async def _run(self) -> None:
        while self._queue or not self._closing:
            if not self._queue:
                self._wake.clear()
                if self._closing:
                    return
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=30)
                except TimeoutError:
                    if not self._queue:
                        return  # idle: the next submit starts a fresh runner
                continue
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            await self._answer(batch)

    async def _answer(self, batch: list[_Waiting[T, R]]) -> None:
        try:
            results = await self._process([waiting.item for waiting in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{self._name}: {len(results)} answers for {len(batch)} items")
        except Exception as exc:
            log.warning("%s: a batch of %d failed: %s", self._name, len(batch), type(exc).__name__)
            results = [exc] * len(batch)
        answer_all([waiting.future for waiting in batch], results)

"""Group commit whose batches follow one another without waiting for the callers' loop.

`GroupCommitter` takes a batch, commits it, answers it, and only then takes the next. Under a flash
sale's storm the answering happens on the server's loop, busy with a thousand connections: each batch
of 256 orders waited about 0.1 s to be heard back on that loop and 0.1 s more for the gate to learn its
outcome before the next batch could start, 0.45 s of a 1.7 s storm between five batches (a trace,
2026-12-07). Here `commit` runs batch after batch on a loop of its own (`LoopThread`, or the callers'
loop when none is given); each outcome goes back to the callers' loop, where `finish` (telling the gate
what the database decided) runs and answers the callers while the next batch is already committing.
Outcomes are finished in the order their batches committed.

The queue is bounded: when it is full, `submit` refuses at once with `Busy` (503 + Retry-After).
"""

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from kaquan.kit.errors import Busy
from kaquan.kit.futures import answer_all
from kaquan.kit.loop_thread import LoopThread

log = logging.getLogger(__name__)

T = TypeVar("T")
B = TypeVar("B")
R = TypeVar("R")


@dataclass(frozen=True)
class _Waiting(Generic[T, R]):
    item: T
    future: asyncio.Future[R]


class CommitPipeline(Generic[T, B, R]):
    """`commit` turns a batch of items into an outcome; `finish` turns the outcome into one answer per item."""

    def __init__(
        self,
        commit: Callable[[list[T]], Awaitable[B]],
        finish: Callable[[list[T], B | Exception], Awaitable[Sequence[R | Exception]]],
        *,
        runs_on: LoopThread | None = None,
        max_batch: int = 256,
        max_queue: int = 10_000,
        name: str = "batch",
    ) -> None:
        self._commit = commit
        self._finish = finish
        self._runs_on = runs_on
        self._max_batch = max_batch
        self._max_queue = max_queue
        self._name = name
        self._queue: deque[_Waiting[T, R]] = deque()
        self._lock = threading.Lock()  # the queue and `_committing`, shared by the two loops
        self._committing = False
        self._runner: asyncio.Task[None] | None = None
        self._finishing: asyncio.Task[None] | None = None  # the latest batch's finish; the next one waits for it
        self._closing = False

    @property
    def depth(self) -> int:
        """Items waiting for a batch."""
        return len(self._queue)

    async def submit(self, item: T) -> R:
        return await asyncio.shield(self.enqueue(item))

    def enqueue(self, item: T) -> asyncio.Future[R]:
        """Queue `item` for a batch and return the future of its answer; `Busy` at once when full or closing.

        For a caller that may stop waiting before the answer (the future is shared: never cancel it).
        """
        if self._closing:
            raise Busy(f"{self._name} is shutting down", retry_after=1)
        if len(self._queue) >= self._max_queue:
            raise Busy(f"{self._name} queue is full", retry_after=1)
        home = asyncio.get_running_loop()
        waiting: _Waiting[T, R] = _Waiting(item, home.create_future())
        with self._lock:
            self._queue.append(waiting)
            start, self._committing = not self._committing, True
        if start:
            work = self._run(home) if self._runs_on is None else self._runs_on.run(lambda: self._run(home))
            self._runner = asyncio.create_task(work, name=f"commit-pipeline:{self._name}")
        return waiting.future

    async def close(self) -> None:
        """Commit and answer what is queued; refuse new items."""
        self._closing = True
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._finishing is not None:
            await asyncio.wait([self._finishing])

    async def _run(self, home: asyncio.AbstractEventLoop) -> None:
        """Commit batch after batch until the queue is empty (on the commit loop); `home`: the callers' loop."""
        try:
            while True:
                with self._lock:
                    if not self._queue:
                        self._committing = False  # under the lock: a submit from now on starts a new runner
                        return
                    batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
                outcome: B | Exception
                try:
                    outcome = await self._commit([waiting.item for waiting in batch])
                except Exception as exc:
                    outcome = exc
                home.call_soon_threadsafe(self._finish_in_turn, batch, outcome)
        except BaseException:
            with self._lock:
                self._committing = False
            raise

    def _finish_in_turn(self, batch: list[_Waiting[T, R]], outcome: B | Exception) -> None:
        self._finishing = asyncio.create_task(self._answer(self._finishing, batch, outcome))

    async def _answer(
        self, previous: "asyncio.Task[None] | None", batch: list[_Waiting[T, R]], outcome: B | Exception
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        results: Sequence[R | Exception]
        try:
            results = await self._finish([waiting.item for waiting in batch], outcome)
            if len(results) != len(batch):
                raise RuntimeError(f"{self._name}: {len(results)} answers for {len(batch)} items")
        except Exception as exc:
            log.warning("%s: a batch of %d failed: %s", self._name, len(batch), type(exc).__name__)
            results = [exc] * len(batch)
        answer_all([waiting.future for waiting in batch], results)

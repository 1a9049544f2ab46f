"""A second event loop on a thread of its own, for work that must not queue behind a busy loop's callbacks.

An asyncio loop runs its ready callbacks first come, first served. Under a flash sale's storm the
server's loop has hundreds of connections' answers ready at every turn, so each database round trip
of a group commit waited behind all of them: a batch of 256 orders that needs ~15 round trips took
0.3–1.5 s (bench flash, 2026-12-07), while the buyers it would answer waited. On a loop of its own
the batch waits at most for the interpreter's switch interval per round trip (`sys.getswitchinterval`,
5 ms), whatever the other loop has queued.

Objects bound to a loop (database connections above all) must be used on this loop only: the work
passed to `run` opens its own.
"""

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An event loop running on a daemon thread; `run` hands it a coroutine and awaits the outcome."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def run(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run `work()` on the thread's loop (started on first use) and return its result or raise its error."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work(), self._started()))

    async def run_if_started(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """`run`, unless the loop never started; for clean-up that must happen there (closing its connections)."""
        if self._loop is not None:
            await self.run(work)

    def stop(self) -> None:
        """Stop the loop and wait for the thread to end."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                # asyncio's own loop, not uvloop: a uvloop loop whose leftovers were collected on another thread
                # crashed a test process (segmentation fault while garbage-collecting, CI 2026-12-07).
                loop = asyncio.new_event_loop()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.run_forever()

                # Work handed over before the loop runs waits in its queue: no need to wait for the thread here.
                self._thread = threading.Thread(target=serve, name=self._name, daemon=True)
                self._thread.start()
                self._loop = loop
            return self._loop

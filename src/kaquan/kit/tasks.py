"""Stopping background tasks for certain.

`task.cancel()` asks once. A library may swallow that request: redis-py 8 catches the
`CancelledError` that arrives while it is opening a connection and carries on, so a
pub/sub listener cancelled at that moment waits for its next message forever, and so
does whoever awaits it. `stop` asks again until the task has ended.
"""

import asyncio
import contextlib

_ASK_EVERY_S = 0.05


async def stop(task: asyncio.Task[object] | None) -> None:
    """Cancel the task and wait until it has ended, repeating the cancel if it was swallowed."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), _ASK_EVERY_S)
    if not task.cancelled():
        with contextlib.suppress(Exception):
            task.result()

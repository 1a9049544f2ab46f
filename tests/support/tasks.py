"""Stopping what a test left running before its event loop closes."""

import asyncio

from kaquan.kit.tasks import stop


async def stop_tasks_left_running(running_before: set[asyncio.Task[object]]) -> None:
    """Stop every task of this loop that was not running before, as `kit.tasks.stop` does.

    Closing a loop cancels its tasks once and waits for all of them: a task that swallowed that one
    request (`kit.tasks` says which library does) held the closing loop, and the test, for good.
    """
    current = asyncio.current_task()
    for task in asyncio.all_tasks() - running_before - {current}:
        await stop(task)

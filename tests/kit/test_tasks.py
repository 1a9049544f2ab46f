"""`tasks.stop` ends a task even when the task swallows the first cancel."""

import asyncio

from kaquan.kit import tasks


async def test_a_plain_task_is_stopped() -> None:
    task = asyncio.create_task(asyncio.sleep(60))
    await tasks.stop(task)
    assert task.cancelled()


async def test_a_task_that_swallows_one_cancel_is_stopped_by_asking_again() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(tasks.stop(task), 5)
    assert swallowed == 1
    assert task.cancelled()


async def test_a_task_that_already_failed_is_stopped_without_raising() -> None:
    async def failing() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(failing())
    await asyncio.sleep(0)
    await tasks.stop(task)
    assert task.done()


async def test_no_task_is_nothing_to_stop() -> None:
    await tasks.stop(None)

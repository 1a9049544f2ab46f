"""A second event loop on a thread of its own: work handed to it runs there, and its outcome comes back."""

import asyncio
import threading

import pytest

from kaquan.kit.loop_thread import LoopThread


async def where_am_i() -> tuple[str, asyncio.AbstractEventLoop]:
    await asyncio.sleep(0)
    return threading.current_thread().name, asyncio.get_running_loop()


async def test_work_runs_on_the_threads_own_loop_and_its_result_comes_back() -> None:
    thread = LoopThread("commits")
    try:
        name, loop = await thread.run(where_am_i)
        again = await thread.run(where_am_i)
    finally:
        thread.stop()

    assert name == "commits"
    assert loop is not asyncio.get_running_loop()
    assert again == (name, loop)  # one thread and loop for every call


async def test_an_error_of_the_work_is_raised_to_the_caller() -> None:
    thread = LoopThread("commits")

    async def broken() -> None:
        raise ConnectionResetError("the database went away")

    try:
        with pytest.raises(ConnectionResetError, match="went away"):
            await thread.run(broken)
        assert await thread.run(where_am_i)  # the loop goes on serving
    finally:
        thread.stop()


async def test_the_callers_loop_stays_free_while_the_work_waits() -> None:
    thread = LoopThread("commits")
    release = threading.Event()

    async def slow() -> str:
        await asyncio.to_thread(release.wait)
        return "done"

    try:
        running = asyncio.ensure_future(thread.run(slow))
        await asyncio.sleep(0.01)
        assert not running.done()
        release.set()
        assert await running == "done"
    finally:
        release.set()
        thread.stop()


async def test_stopping_ends_the_thread_and_clean_up_runs_only_on_a_started_loop() -> None:
    never_started = LoopThread("idle")
    cleaned: list[str] = []

    async def clean_up() -> None:
        cleaned.append(threading.current_thread().name)

    await never_started.run_if_started(clean_up)
    never_started.stop()
    started = LoopThread("busy")
    await started.run(where_am_i)
    await started.run_if_started(clean_up)
    started.stop()

    assert cleaned == ["busy"]
    assert "busy" not in {t.name for t in threading.enumerate()}

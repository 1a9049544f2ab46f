"""Group commit in a pipeline: batches commit one after another on their own loop, and are answered on the callers'.

The next batch does not wait for the previous one's answering (telling the gate, in the flash sale), and
answers still come in the order the batches committed.
"""

import asyncio
import threading

import pytest

from kaquan.kit.commit_pipeline import CommitPipeline
from kaquan.kit.errors import Busy
from kaquan.kit.loop_thread import LoopThread


class Ledger:
    """A stand-in for the database: records each batch it commits and on which thread."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()
        self.finished: list[list[int]] = []

    async def commit(self, items: list[int]) -> list[int]:
        await asyncio.sleep(0)
        self.batches.append(items)
        self.threads.add(threading.current_thread().name)
        return [item * 10 for item in items]

    async def finish(self, items: list[int], outcome: list[int] | Exception) -> list[int | Exception]:
        self.finished.append(items)
        if isinstance(outcome, Exception):
            return [outcome for _ in items]
        return list(outcome)


async def test_every_item_is_answered_with_its_own_result_in_batches_that_grow_with_the_load() -> None:
    ledger = Ledger()
    pipeline = CommitPipeline(ledger.commit, ledger.finish, max_batch=4)

    answers = await asyncio.gather(*(pipeline.submit(n) for n in range(10)))

    assert answers == [n * 10 for n in range(10)]
    assert sorted(n for batch in ledger.batches for n in batch) == list(range(10))
    assert len(ledger.batches) < 10  # items queued while a batch committed went together
    assert all(len(batch) <= 4 for batch in ledger.batches)
    assert ledger.finished == ledger.batches  # answered in the order they committed


async def test_batches_commit_on_the_loop_thread_and_are_answered_on_the_callers_loop() -> None:
    ledger = Ledger()
    thread = LoopThread("commits")
    answered_on: list[str] = []

    async def finish(items: list[int], outcome: list[int] | Exception) -> list[int | Exception]:
        answered_on.append(threading.current_thread().name)
        return await ledger.finish(items, outcome)

    pipeline = CommitPipeline(ledger.commit, finish, runs_on=thread)
    try:
        assert list(await asyncio.gather(pipeline.submit(1), pipeline.submit(2))) == [10, 20]
        await pipeline.close()
    finally:
        thread.stop()

    assert ledger.threads == {"commits"}
    assert set(answered_on) == {threading.current_thread().name}


async def test_the_next_batch_commits_while_the_previous_one_is_still_being_answered() -> None:
    ledger = Ledger()
    answering = asyncio.Event()
    let_answer = asyncio.Event()

    async def slow_finish(items: list[int], outcome: list[int] | Exception) -> list[int | Exception]:
        if items == [1]:
            answering.set()
            await let_answer.wait()
        return await ledger.finish(items, outcome)

    pipeline = CommitPipeline(ledger.commit, slow_finish)
    first = asyncio.ensure_future(pipeline.submit(1))
    await answering.wait()
    second = asyncio.ensure_future(pipeline.submit(2))
    for _ in range(20):
        await asyncio.sleep(0)

    assert ledger.batches == [[1], [2]]  # committed although the first is not answered yet
    assert not first.done() and not second.done()  # nobody is answered out of turn
    let_answer.set()
    assert list(await asyncio.gather(first, second)) == [10, 20]
    assert ledger.finished == [[1], [2]]


async def test_a_failed_commit_reaches_finish_and_the_queue_goes_on() -> None:
    ledger = Ledger()

    async def commit(items: list[int]) -> list[int]:
        if 13 in items:
            raise ConnectionResetError("the database went away")
        return await ledger.commit(items)

    pipeline = CommitPipeline(commit, ledger.finish, max_batch=1)

    with pytest.raises(ConnectionResetError):
        await pipeline.submit(13)
    assert await pipeline.submit(2) == 20


async def test_finish_answering_the_wrong_number_fails_the_batch_not_the_pipeline() -> None:
    ledger = Ledger()

    async def short(items: list[int], outcome: list[int] | Exception) -> list[int | Exception]:
        return [] if items == [1] else await ledger.finish(items, outcome)

    pipeline = CommitPipeline(ledger.commit, short, max_batch=1)

    with pytest.raises(RuntimeError, match="0 answers for 1 items"):
        await pipeline.submit(1)
    assert await pipeline.submit(2) == 20


async def test_a_full_queue_refuses_at_once_and_a_closed_pipeline_refuses_everything() -> None:
    release = asyncio.Event()

    async def stuck(items: list[int]) -> list[int]:
        await release.wait()
        return items

    async def finish(items: list[int], outcome: list[int] | Exception) -> list[int | Exception]:
        return list(outcome) if not isinstance(outcome, Exception) else [outcome for _ in items]

    pipeline = CommitPipeline(stuck, finish, max_batch=1, max_queue=2)
    committing = asyncio.ensure_future(pipeline.submit(1))
    await asyncio.sleep(0.01)
    waiting = [asyncio.ensure_future(pipeline.submit(n)) for n in (2, 3)]
    await asyncio.sleep(0)

    with pytest.raises(Busy, match="queue is full"):
        await pipeline.submit(4)
    release.set()
    closing = asyncio.ensure_future(pipeline.close())
    assert await asyncio.gather(committing, *waiting) == [1, 2, 3]  # close drains what was queued
    await closing
    with pytest.raises(Busy, match="shutting down"):
        await pipeline.submit(5)

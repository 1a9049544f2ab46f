"""Control experiments whose race is certain, not left to the scheduler.

A control experiment switches a protection off (`Database.unprotected()`: row locks, IMMEDIATE
transactions, per-client serialization) and shows that the race it prevents then happens. Left to
asyncio and the database, the contenders may still run one after the other on a fast machine, and
the experiment passes or fails by chance. Here the read that decides (is this handled already, how
much quota is used, is the order delivered) is wrapped so that no contender goes on from it until
every contender has made it: all of them decide on the same state, and the race is certain.

The meeting point must come after the read and before the transaction's first write: on SQLite a
writer holds the one write lock until it commits, so a contender that wrote and then waited for the
others would wait for them for ever. The wait is bounded (`TIMEOUT_S`), and leaving the block checks
that every contender came: one that never reaches the read (a protection still on, a changed code
path) fails the experiment, and never hangs it or passes as a contender lost to errors.
"""

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import pytest

P = ParamSpec("P")
T = TypeVar("T")
TIMEOUT_S = 10.0


class Rendezvous:
    """`contenders` tasks meet here, as often as they come: none goes on until all have arrived."""

    def __init__(self, contenders: int, *, timeout_s: float = TIMEOUT_S) -> None:
        self.contenders = contenders
        self.timeout_s = timeout_s
        self.meetings = 0
        self.failure: str | None = None
        self._barrier = asyncio.Barrier(contenders)

    async def wait(self) -> None:
        """Wait for the other contenders; the first to give up (after `timeout_s`) breaks it for them all."""
        try:
            async with asyncio.timeout(self.timeout_s):
                arrived_last = await self._barrier.wait() == self.contenders - 1
        except TimeoutError:
            waiting = self._barrier.n_waiting + 1
            self.failure = f"{waiting} of {self.contenders} contenders met within {self.timeout_s} s"
            await self._barrier.abort()
            raise
        if arrived_last:
            self.meetings += 1

    def after(self, read: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        """`read`, returning only once every contender has read."""

        async def read_then_wait_for_the_others(*args: P.args, **kwargs: P.kwargs) -> T:
            found = await read(*args, **kwargs)
            await self.wait()
            return found

        return read_then_wait_for_the_others


@contextmanager
def meeting(contenders: int) -> Iterator[Rendezvous]:
    """A rendezvous of `contenders`; leaving the block, they must have met at least once, every time in full."""
    rendezvous = Rendezvous(contenders)
    yield rendezvous
    if rendezvous.failure is not None:
        raise AssertionError(f"the race was not run: only {rendezvous.failure} (is a protection still on?)")
    if rendezvous.meetings == 0:
        raise AssertionError("the race was not run: no contender reached the read")


@contextmanager
def each_reads_before_any_writes(owner: object, name: str, contenders: int) -> Iterator[Rendezvous]:
    """Within the block, `owner.<name>` (an async read) returns only once `contenders` calls of it have read."""
    with meeting(contenders) as rendezvous, pytest.MonkeyPatch.context() as patch:
        patch.setattr(owner, name, rendezvous.after(getattr(owner, name)))
        yield rendezvous

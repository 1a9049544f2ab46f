"""Handing a batch's outcomes to the callers waiting on them (group commit, pipelined Redis scripts)."""

import asyncio
from collections.abc import Sequence
from typing import TypeVar

R = TypeVar("R")


def answer_all(futures: Sequence[asyncio.Future[R]], outcomes: Sequence[R | Exception]) -> None:
    """Each future its outcome: a result, or an exception to raise. A future already done (its caller gave up
    or was cancelled) is left as it is."""
    for future, outcome in zip(futures, outcomes, strict=True):
        if future.done():
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

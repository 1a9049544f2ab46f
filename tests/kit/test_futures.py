"""A batch's outcomes reach their callers: a result or an exception each, and a caller who gave up is left alone."""

import asyncio

import pytest

from kaquan.kit.futures import answer_all


async def test_each_caller_gets_its_own_result_or_exception_and_a_cancelled_one_is_left_alone() -> None:
    loop = asyncio.get_running_loop()
    won, refused, gone = loop.create_future(), loop.create_future(), loop.create_future()
    gone.cancel()

    answer_all([won, refused, gone], ["K0001", ValueError("out of stock"), "K0002"])

    assert won.result() == "K0001"
    with pytest.raises(ValueError, match="out of stock"):
        refused.result()
    assert gone.cancelled()


async def test_outcomes_that_do_not_match_the_callers_are_refused() -> None:
    loop = asyncio.get_running_loop()

    with pytest.raises(ValueError):
        answer_all([loop.create_future()], ["a", "b"])

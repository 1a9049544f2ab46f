"""A script's concurrent calls go to Redis together, one pipeline per batch, and each caller gets its own answer."""

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from kaquan.kit.redis_scripts import PipelinedScript

pytestmark = pytest.mark.skipif(not os.environ.get("KAQUAN_TEST_REDIS_URL"), reason="needs Redis")

COUNT = """
local n = redis.call('INCR', KEYS[1])
if ARGV[1] == 'refuse' then return redis.error_reply('refused on purpose') end
return n
"""


class CountingPool(ConnectionPool):
    """A real pool that counts the connections taken from it: a batch takes one, for one round trip."""

    taken = 0

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        self.taken += 1
        return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]


class CountingPipelines(Redis):
    """A real client whose pool counts the round trips of its batches."""

    def __init__(self, pool: CountingPool) -> None:
        super().__init__(connection_pool=pool)
        self.counting = pool

    @property
    def pipelines(self) -> int:
        return self.counting.taken


@pytest.fixture
async def redis() -> AsyncIterator[CountingPipelines]:
    client = CountingPipelines(CountingPool.from_url(os.environ["KAQUAN_TEST_REDIS_URL"]))
    await client.delete("kaquan:test:scripts")
    await client.script_load(COUNT)  # known to Redis, as after a script's first call
    client.counting.taken = 0
    yield client
    await client.delete("kaquan:test:scripts")
    await client.aclose()


async def test_calls_made_at_once_go_to_redis_in_one_pipeline_and_each_gets_its_own_answer(
    redis: CountingPipelines,
) -> None:
    script = PipelinedScript(redis, COUNT)

    answers = await asyncio.gather(*(script(["kaquan:test:scripts"], ["count"]) for _ in range(200)))

    assert sorted(answers) == list(range(1, 201))
    assert redis.pipelines == 1


async def test_a_call_alone_is_answered(redis: CountingPipelines) -> None:
    script = PipelinedScript(redis, COUNT)

    assert await script(["kaquan:test:scripts"], ["count"]) == 1
    assert await script(["kaquan:test:scripts"], ["count"]) == 2


async def test_a_batch_holds_at_most_batch_max_calls(redis: CountingPipelines) -> None:
    script = PipelinedScript(redis, COUNT, batch_max=100)

    answers = await asyncio.gather(*(script(["kaquan:test:scripts"], ["count"]) for _ in range(250)))

    assert sorted(answers) == list(range(1, 251))
    assert redis.pipelines == 3


async def test_a_calls_error_reaches_that_caller_alone(redis: CountingPipelines) -> None:
    script = PipelinedScript(redis, COUNT)

    answers = await asyncio.gather(
        script(["kaquan:test:scripts"], ["count"]),
        script(["kaquan:test:scripts"], ["refuse"]),
        script(["kaquan:test:scripts"], ["count"]),
        return_exceptions=True,
    )

    assert answers[0] == 1 and answers[2] == 3
    assert isinstance(answers[1], ResponseError) and "refused on purpose" in str(answers[1])


async def test_a_script_redis_does_not_know_is_loaded_once_and_every_call_is_answered(
    redis: CountingPipelines,
) -> None:
    unknown = f"{COUNT}-- {uuid.uuid4()}\n"  # never loaded, as after a Redis restart (no SCRIPT FLUSH: Redis is shared)
    script = PipelinedScript(redis, unknown)

    answers = await asyncio.gather(*(script(["kaquan:test:scripts"], ["count"]) for _ in range(20)))

    assert sorted(answers) == list(range(1, 21))
    assert redis.pipelines == 3  # the batch Redis refused, the script's load, the batch again
    assert await redis.script_exists(script.sha) == [True]


async def test_a_cancelled_caller_leaves_the_others_answered(redis: CountingPipelines) -> None:
    script = PipelinedScript(redis, COUNT)
    calls = [asyncio.ensure_future(script(["kaquan:test:scripts"], ["count"])) for _ in range(10)]
    await asyncio.sleep(0)
    calls[3].cancel()

    answers = await asyncio.gather(*calls, return_exceptions=True)

    assert isinstance(answers[3], asyncio.CancelledError)
    counted = [answer for answer in answers if isinstance(answer, int)]
    assert len(counted) == 9 and len(set(counted)) == 9


async def test_an_unreachable_redis_fails_every_caller_of_the_batch() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Redis(host="127.0.0.1", port=port)
    script = PipelinedScript(client, COUNT)

    answers = await asyncio.gather(*(script(["k"], ["count"]) for _ in range(3)), return_exceptions=True)

    assert all(isinstance(answer, RedisConnectionError) for answer in answers)
    await client.aclose()


async def test_calls_queued_behind_a_full_wire_go_out_once_a_batch_returns(redis: CountingPipelines) -> None:
    script = PipelinedScript(redis, COUNT, batch_max=5, in_flight_max=1)

    answers = await asyncio.gather(*(script(["kaquan:test:scripts"], ["count"]) for _ in range(23)))

    assert sorted(answers) == list(range(1, 24))
    assert redis.pipelines == 5


async def test_a_connection_redis_dropped_while_idle_is_replaced_and_the_batch_answered(
    redis: CountingPipelines,
) -> None:
    script = PipelinedScript(redis, COUNT)
    assert await script(["kaquan:test:scripts"], ["count"]) == 1
    ours = await redis.client_id()  # the pool's one connection, the batch's
    admin = Redis.from_url(os.environ["KAQUAN_TEST_REDIS_URL"])
    assert await admin.client_kill_filter(_id=str(ours)) == 1  # as a Redis restart does to its clients
    await admin.aclose()

    answers = await asyncio.gather(*(script(["kaquan:test:scripts"], ["count"]) for _ in range(3)))

    assert sorted(answers) == [2, 3, 4]

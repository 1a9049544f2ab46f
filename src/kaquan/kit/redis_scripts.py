"""A Lua script on Redis whose concurrent calls go out together: one pipeline per batch, not a round trip each.

py-spy over a flash-sale storm (2026-12-07, 1,000 buyers at once) put 37 % of the server loop's samples in
redis-py's per-command work for three scripts a purchase (the throttle, the gate, risk's counters): taking a
connection from the pool and giving it back, a time-out around every send and every read, one socket write per
command. Here a call joins a queue; on the loop's next turn every call queued so far leaves in one pipeline
(`batch_max` at most), and calls made while batches are on the wire wait for the next one (`in_flight_max`
batches at once). Alone, a call pays one turn of the loop. Each call is still one script, atomic on Redis;
calls of one caller stay in order because a caller awaits each answer before its next call.

On a Redis Cluster the pipeline sends each call to its slot's node (a script's keys share one slot). A Redis
that does not know the script (restarted, flushed) gets it loaded once and the calls it refused sent again.
A call's Redis error is raised to that caller alone; a lost connection fails the batch's callers, as it would
have failed each of their own calls.
"""

import asyncio
import hashlib
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import hiredis
from redis.asyncio import ConnectionPool
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, ResponseError

from kaquan.kit.futures import answer_all
from kaquan.kit.keyvalue import RedisClient

Arg = str | int | bytes
BATCH_MAX = 256
IN_FLIGHT_MAX = 4


@dataclass
class _Call:
    keys: Sequence[str]
    args: Sequence[Arg]
    answer: asyncio.Future[Any]


@dataclass
class _Lane:
    """One event loop's queue of calls (a redis-py client's connections belong to the loop that opened them)."""

    queue: list[_Call] = field(default_factory=list)
    in_flight: int = 0
    scheduled: bool = False
    sending: set[asyncio.Task[None]] = field(default_factory=set)


class PipelinedScript:
    def __init__(
        self, client: RedisClient, source: str, *, batch_max: int = BATCH_MAX, in_flight_max: int = IN_FLIGHT_MAX
    ) -> None:
        self._client = client
        self._source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1
        self._batch_max = batch_max
        self._in_flight_max = in_flight_max
        self._lanes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Lane] = weakref.WeakKeyDictionary()

    async def __call__(self, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        loop = asyncio.get_running_loop()
        lane = self._lanes.get(loop)
        if lane is None:
            lane = self._lanes[loop] = _Lane()
        answer: asyncio.Future[Any] = loop.create_future()
        lane.queue.append(_Call(keys, args, answer))
        self._schedule(loop, lane)
        return await answer

    def _schedule(self, loop: asyncio.AbstractEventLoop, lane: _Lane) -> None:
        if not lane.scheduled and lane.in_flight < self._in_flight_max:
            lane.scheduled = True
            loop.call_soon(self._start, loop, lane)  # after the callbacks of this turn have queued their calls

    def _start(self, loop: asyncio.AbstractEventLoop, lane: _Lane) -> None:
        lane.scheduled = False
        while lane.queue and lane.in_flight < self._in_flight_max:
            batch = [call for call in lane.queue[: self._batch_max] if not call.answer.done()]
            del lane.queue[: self._batch_max]
            if not batch:
                continue
            lane.in_flight += 1
            task = loop.create_task(self._send(loop, lane, batch))
            lane.sending.add(task)
            task.add_done_callback(lane.sending.discard)

    async def _send(self, loop: asyncio.AbstractEventLoop, lane: _Lane, batch: list[_Call]) -> None:
        replies: list[Any]
        try:
            replies = await self._replies(batch)
        except Exception as exc:  # the batch as a whole failed (a lost connection): each of its callers hears it
            replies = [exc] * len(batch)
        except BaseException:  # the loop is shutting down
            for call in batch:
                call.answer.cancel()
            raise
        finally:
            lane.in_flight -= 1
            if lane.queue:
                self._schedule(loop, lane)
        answer_all([call.answer for call in batch], replies)

    async def _replies(self, batch: list[_Call]) -> list[Any]:
        replies = await self._pipeline(batch)
        refused = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if refused:
            await self._client.script_load(self._source)
            again = await self._pipeline([batch[i] for i in refused])
            for i, reply in zip(refused, again, strict=True):
                replies[i] = reply
        return replies

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        if isinstance(self._client, RedisCluster):
            pipe = self._client.pipeline(transaction=False)
            for call in batch:
                pipe.execute_command("EVALSHA", self.sha, len(call.keys), *call.keys, *call.args)
            return list(await pipe.execute(raise_on_error=False))
        return await self._on_one_connection(self._client.connection_pool, batch)

    async def _on_one_connection(self, pool: ConnectionPool, batch: list[_Call]) -> list[Any]:
        """The batch written at once and its replies read in turn, on one connection of the pool.

        Packed by hiredis in one call per script call (it comes with `redis[hiredis]`): redis-py's pipeline
        encodes every argument in Python first, 6 % of the server loop in a storm (py-spy, 2026-12-07). A connection
        Redis dropped while it sat in the pool is replaced as it is taken (the pool checks it); one lost while a
        batch is on it fails the batch without a retry, as its calls may have run.
        """
        packed = b"".join(
            hiredis.pack_command(("EVALSHA", self.sha, len(call.keys), *call.keys, *call.args))  # type: ignore[arg-type] # the stub types a 1-tuple
            for call in batch
        )
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await connection.send_packed_command(packed, check_health=False)
            replies: list[Any] = []
            for _ in batch:
                try:
                    replies.append(await connection.read_response())
                except ResponseError as exc:  # this call's own error; the next reply follows on the stream
                    replies.append(exc)
        except BaseException:
            await connection.disconnect()  # replies may still be on their way: never hand the connection on
            raise
        finally:
            await pool.release(connection)
        return replies

"""The per-event queues of admitted purchases: one transaction per batch, then the gate learns what was decided.

An admitted purchase waits in its event's `CommitPipeline`, which commits
everything queued so far in one transaction (`committer.commit_batch`), and the
next batch as soon as that one has committed. The buyer
waits up to `flash_wait_s` (in a storm not at all); past that the purchase stays queued
(the buyer gets a ticket). A full queue refuses at once and the admission goes back to the gate.

After each batch the gate learns what the database decided: a won purchase keeps
its tokens, every other outcome gives them back, and the tokens are capped at the
units the event still holds. A failed batch gives every admission back.

On PostgreSQL the batches commit on an event loop and connections of their own
(`kit.loop_thread`): on the server's loop each of a batch's round trips waited
behind every answer a storm had ready, and the batches that would answer the
winners took seconds. `warm` opens that loop's connections before the storm.
"""

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence

from redis.exceptions import RedisError

from kaquan.flashsale import committer
from kaquan.flashsale.committer import Admitted, Committed
from kaquan.flashsale.gate import Gate, Settlement
from kaquan.flashsale.keys import buyer_tag
from kaquan.kit import tasks
from kaquan.kit.commit_pipeline import CommitPipeline
from kaquan.kit.config import Settings
from kaquan.kit.db import Database
from kaquan.kit.errors import Busy
from kaquan.kit.loop_thread import LoopThread
from kaquan.payments import service as payments
from kaquan.payments.gateway import Gateway

log = logging.getLogger(__name__)
COMMIT_CONNECTIONS = 2  # the commit loop's pool: batches of one event commit one after the other
COMMITTED_KEPT_S = 60.0  # a won purchase's answer is kept this long for its ticket …
COMMITTED_KEPT_MAX = 20_000  # … and for at most this many purchases, the oldest dropped first


class CommitFailed(Busy):
    """The batch could not be committed (the database was busy or failing): nothing was bought, try again."""


class CommitQueues:
    """One group-committing queue per event in this process, and the gate settled after every batch."""

    def __init__(self, db: Database, settings: Settings, gate: Gate, *, gateway: Gateway | None) -> None:
        self.db = db
        self.gate = gate
        self._settings = settings
        self._gateway = gateway
        self._committers: dict[int, CommitPipeline[Admitted, committer.BatchResult, Committed]] = {}
        self._in_flight: dict[int, int] = {}
        self._queued: set[str] = set()  # purchase keys waiting in this process's queues
        # Purchases this process committed lately, for their tickets: (event, key) -> (when, what was decided).
        self._committed: OrderedDict[tuple[int, str], tuple[float, Committed]] = OrderedDict()
        twin = db.twin(pool_size=COMMIT_CONNECTIONS)
        self._commit_db = twin or db
        self._commit_loop = LoopThread("flash-sale commits") if twin is not None else None
        self._warming: asyncio.Task[None] | None = None

    def in_flight(self, event_id: int) -> bool:
        """Whether purchases of the event are admitted here and not yet settled with the gate."""
        return bool(self._in_flight.get(event_id, 0))

    def waiting(self, event_id: int) -> int:
        """Purchases of the event admitted here and not yet settled with the gate (the queue, as it stands)."""
        return self._in_flight.get(event_id, 0)

    def is_queued(self, key: str) -> bool:
        """Whether the purchase `key` still waits in one of this process's queues."""
        return key in self._queued

    def committed(self, event_id: int, key: str) -> Committed | None:
        """What a batch of this process decided for the purchase, if lately (None: ask the gate and the database).

        A storm's winners get tickets and poll them a second later: most polls that reach the process that
        committed the purchase are answered from here, without the three statements of the database's answer.
        """
        found = self._committed.get((event_id, key))
        if found is None or time.monotonic() - found[0] > COMMITTED_KEPT_S:
            return None
        return found[1]

    async def wait(self, item: Admitted) -> Committed | None:
        """Queue an admitted purchase and wait up to `flash_wait_s` for its batch (None: still queued).

        In a storm (`flash_wait_queue_max` or more of the event's purchases already waiting in this process)
        it does not wait: the buyer is answered with a ticket at once. A storm's batches take up to a second
        on a busy loop, and winners waiting for them made the slowest first answers of a storm (p99 1.1–1.9 s,
        docs/flash-sale.md); a quiet sale still answers the winner with the order.

        A full queue raises `Busy` and gives the admission back; a failed batch raises `CommitFailed`.
        """
        queued_before = self.waiting(item.event_id)
        try:
            answer = self._committer(item.event_id).enqueue(item)
        except Busy:  # the queue refused it: it never reached the database, its admission goes back
            await self._tell_gate(item.event_id, [given_back(item)], tokens_cap=None)
            raise
        self._in_flight[item.event_id] = queued_before + 1
        # The answer outlives a buyer who stops waiting; the ticket finds it here, in the gate or in the database.
        self._queued.add(item.key)
        answer.add_done_callback(lambda done: self._answered(item, done))
        if queued_before >= self._settings.flash_wait_queue_max:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(answer), timeout=self._settings.flash_wait_s)
        except TimeoutError:
            return None

    async def warm(self) -> None:
        """Start the commit loop and open its connections now, not at the first batch of a storm (PostgreSQL).

        A cold first batch connected and prepared its statements while the storm's first winners waited:
        0.26 s for 7 purchases, against 0.2 s for 256 on warm connections (a trace, 2026-12-07).
        """
        if self._commit_loop is None:
            return
        warming = self._warming
        if warming is None or (warming.done() and (warming.cancelled() or warming.exception() is not None)):
            warming = self._warming = asyncio.create_task(
                self._commit_loop.run(lambda: self._commit_db.warm(COMMIT_CONNECTIONS))
            )
        await asyncio.shield(warming)

    async def give_back(self, item: Admitted) -> None:
        """An admitted purchase that will not be queued (refused after the gate): its admission goes back."""
        await self._tell_gate(item.event_id, [given_back(item)], tokens_cap=None)

    async def close(self) -> None:
        """Commit what is queued, then close the commit loop's connections and stop it."""
        for batcher in self._committers.values():
            await batcher.close()
        await tasks.stop(self._warming)
        if self._commit_loop is not None:
            await self._commit_loop.run_if_started(self._commit_db.dispose)
            self._commit_loop.stop()

    def _answered(self, item: Admitted, answer: "asyncio.Future[Committed]") -> None:
        self._queued.discard(item.key)
        if answer.cancelled() or answer.exception() is not None:  # retrieved: the buyer may have stopped waiting
            return
        committed = answer.result()
        if committed.outcome == "won":
            self._committed[(item.event_id, item.key)] = (time.monotonic(), committed)
            if len(self._committed) > COMMITTED_KEPT_MAX:
                self._committed.popitem(last=False)

    def _committer(self, event_id: int) -> CommitPipeline[Admitted, committer.BatchResult, Committed]:
        batcher = self._committers.get(event_id)
        if batcher is None:

            async def commit(items: list[Admitted]) -> committer.BatchResult:
                return await self._commit(event_id, items)

            async def finish(
                items: list[Admitted], outcome: committer.BatchResult | Exception
            ) -> list[Committed | Exception]:
                return await self._finish(event_id, items, outcome)

            batcher = CommitPipeline(
                commit,
                finish,
                runs_on=self._commit_loop,
                max_batch=self._settings.flash_batch_max,
                max_queue=self._settings.flash_queue_max,
                name=f"flash-sale {event_id}",
            )
            self._committers[event_id] = batcher
        return batcher

    async def _commit(self, event_id: int, items: list[Admitted]) -> committer.BatchResult:
        async with self._commit_db.transaction() as session:
            return await committer.commit_batch(
                self._commit_db,
                session,
                payments.require_gateway(self._gateway),
                event_id,
                items,
                hold_minutes=self._settings.hold_minutes,
            )

    async def _finish(
        self, event_id: int, items: list[Admitted], outcome: committer.BatchResult | Exception
    ) -> list[Committed | Exception]:
        """Tell the gate what the database decided, then answer each purchase."""
        if isinstance(outcome, Exception):
            log.warning("flash-sale batch of %d for event %d failed: %s", len(items), event_id, type(outcome).__name__)
            await self._settle(event_id, [given_back(item) for item in items], tokens_cap=None)
            return [
                CommitFailed("the flash sale could not record this purchase; nothing was bought, try again")
                for _ in items
            ]
        settlements = [_settlement(item, result) for item, result in zip(items, outcome.results, strict=True)]
        await self._settle(event_id, settlements, tokens_cap=outcome.held_left)
        return list(outcome.results)

    async def _settle(self, event_id: int, settlements: Sequence[Settlement], *, tokens_cap: int | None) -> None:
        self._in_flight[event_id] = max(self._in_flight.get(event_id, 0) - len(settlements), 0)
        await self._tell_gate(event_id, settlements, tokens_cap=tokens_cap)

    async def _tell_gate(self, event_id: int, settlements: Sequence[Settlement], *, tokens_cap: int | None) -> None:
        try:
            await self.gate.settle(event_id, settlements, tokens_cap=tokens_cap)
        except (RedisError, OSError) as exc:  # the database has the truth; the next reconcile repairs the gate
            log.warning("flash-sale gate of event %d not settled: %s", event_id, exc)


def given_back(item: Admitted, state: str | None = None) -> Settlement:
    return _settled(item, give_back=True, state=state)


def _settled(item: Admitted, *, give_back: bool, state: str | None) -> Settlement:
    tag = buyer_tag(item.buyer)
    return Settlement(tag, item.quantity, item.key, give_back, state, item.ip_tag or "", item.device_tag or "")


def _settlement(item: Admitted, result: Committed) -> Settlement:
    """A won purchase keeps its tokens; every other outcome gives them back and says why."""
    if result.outcome == "won":
        return _settled(item, give_back=False, state="won")
    state = {"replayed": "won", "conflict": None}.get(result.outcome, result.outcome)
    return given_back(item, state)

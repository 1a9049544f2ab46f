"""The path of one purchase: gate → bounded queue → one transaction per batch → an answer or a ticket.

`FlashSale` is the per-process object (`Runtime.flash`). A purchase is checked
against the event (cached in memory), then admitted or refused by the gate
without touching the database: sold out, over the buyer's limit, event closed.
An admitted purchase is queued for its event's `GroupCommitter`, which commits
everything queued so far in one transaction (`committer.commit_batch`). The buyer
waits up to `flash_wait_s` for the answer; past that it gets a ticket to poll.
A full queue refuses at once (503 + Retry-After) and gives the admission back.

After each batch the gate learns what the database decided: a won purchase keeps
its tokens, every other outcome gives them back, and the tokens are capped at
the units the event still holds. A reconcile (on first use, when the gate comes
back empty, and every `flash_reconcile_s` while nothing is in flight here)
re-derives the gate from the database, so a crash between admission and commit
loses nothing: that admission never moved a code.
"""

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from kaquan.buyers.errors import BuyerTokenRequired
from kaquan.flashsale import committer, service
from kaquan.flashsale.committer import Admitted, Committed
from kaquan.flashsale.errors import (
    ChannelNotAllowed,
    EventEnded,
    EventNotStarted,
    InvalidQuantity,
    NeedsRedis,
    TicketNotFound,
)
from kaquan.flashsale.gate import PENDING, Admission, Gate, GateView, Settlement
from kaquan.flashsale.keys import (
    Tickets,
    buyer_tag,
    device_tag,
    ip_tag,
    is_device_token,
    normal_buyer,
    purchase_key,
)
from kaquan.flashsale.models import Event
from kaquan.flashsale.reconcile import GateTruth, reconcile
from kaquan.flashsale.schemas import EventOut, PublicEventOut
from kaquan.kit import clock
from kaquan.kit.batching import GroupCommitter
from kaquan.kit.config import Settings
from kaquan.kit.crypto import KeyRing
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput, Busy, IdempotencyConflict
from kaquan.kit.keys import named_key
from kaquan.orders.service import OrderKeys
from kaquan.payments import service as payments
from kaquan.payments.gateway import Gateway

log = logging.getLogger(__name__)
Result = Literal["won", "sold_out", "limit_reached", "queued"]
CLOSED_GATE_TTL_S = 3600


class CommitFailed(Busy):
    """The batch could not be committed (the database was busy or failing): nothing was bought, try again."""


@dataclass(frozen=True)
class EventInfo:
    """What admission needs to know about an event, cached per process."""

    id: int
    name: str
    sku_id: int
    starts_at: datetime
    ends_at: datetime
    status: str
    per_buyer_limit: int
    channel: str | None
    price_minor: int
    currency: str
    requires_verified_buyer: bool
    per_ip_limit: int
    per_device_limit: int

    @classmethod
    def of(cls, event: Event) -> "EventInfo":
        return cls(
            event.id,
            event.name,
            event.sku_id,
            event.starts_at,
            event.ends_at,
            event.status,
            event.per_buyer_limit,
            event.channel,
            event.price_minor,
            event.currency,
            event.requires_verified_buyer,
            event.per_ip_limit,
            event.per_device_limit,
        )


@dataclass(frozen=True)
class Answer:
    """What the buyer is told. `won` carries the order to pay; `queued` a ticket to poll."""

    result: Result
    ticket: str | None = None
    order_no: str | None = None
    lookup_secret: str | None = None
    pay_url: str | None = None
    quantity: int | None = None
    total_minor: int | None = None
    currency: str | None = None
    pay_before: datetime | None = None


class FlashSale:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        gate: Gate,
        *,
        keyring: KeyRing,
        order_keys: OrderKeys,
        gateway: Gateway | None,
        shared_gate: bool,
    ) -> None:
        self.db = db
        self.gate = gate
        self._settings = settings
        self._keyring = keyring
        self._order_keys = order_keys
        self._gateway = gateway
        # Several processes with a gate each would each admit the whole allotment: refuse instead.
        self._refuse = settings.serve_workers > 1 and not shared_gate
        self._events: dict[int, EventInfo] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._committers: dict[int, GroupCommitter[Admitted, Committed]] = {}
        self._in_flight: dict[int, int] = {}
        self._active: set[int] = set()
        self._tickets: Tickets | None = None
        self._reconciler: asyncio.Task[None] | None = None
        self._waiting: set[asyncio.Task[Committed]] = set()
        self._queued: set[str] = set()  # purchase keys waiting in this process's queues

    # The buyer's side ---------------------------------------------------------------------------

    async def purchase(
        self,
        event_id: int,
        buyer: str,
        quantity: int,
        request_id: str,
        *,
        channel: str = "shop",
        buyer_ip: str | None = None,
        device: str | None = None,
        verified: str | None = None,
    ) -> Answer:
        """Try to buy `quantity` units of the event for `buyer`; retrying with the same `request_id` is safe.

        `device`: the client's device token (web.flash_api: its cookie or header). The purchase is
        bound to it: a retry must come from the same device, and the same (buyer, request_id) sent from
        any other device is a purchase of that device's own, never an answer with the first one's order.
        None only for in-process callers. `buyer_ip` and `device` are held to the event's per-address
        and per-device limits. `verified`: the contact a buyer token proves; when given it is the buyer,
        and an event requiring verified buyers refuses purchases without one.
        """
        if self._refuse:
            raise NeedsRedis()
        payments.require_gateway(self._gateway)
        if not request_id or len(request_id) > 128:
            raise BadInput("a request_id of 1 to 128 characters is required", field="request_id")
        if device is not None and not is_device_token(device):
            raise BadInput("a device token is 22 to 128 characters of A-Z, a-z, 0-9, - and _", field="device")
        try:
            return await self._purchase(event_id, buyer, quantity, request_id, channel, buyer_ip, device, verified)
        except (RedisError, OSError, SQLAlchemyError) as exc:
            log.warning("flash-sale purchase failed: %s", type(exc).__name__)
            raise Busy("the flash sale cannot take purchases right now; try again", retry_after=1) from exc

    async def _purchase(
        self,
        event_id: int,
        buyer: str,
        quantity: int,
        request_id: str,
        channel: str,
        buyer_ip: str | None,
        device: str | None,
        verified: str | None,
    ) -> Answer:
        info = await self._info(event_id)
        if verified is not None:
            who = verified
        elif info.requires_verified_buyer:
            raise BuyerTokenRequired()
        else:
            who = normal_buyer(buyer)
            if not who or len(who) > 200:
                raise BadInput("a buyer id (account, phone or email) of 1 to 200 characters is required", field="buyer")
        if info.channel is not None and info.channel != channel:
            raise ChannelNotAllowed(event_id, channel)
        if not 1 <= quantity <= info.per_buyer_limit:
            raise InvalidQuantity(quantity, info.per_buyer_limit)
        info = await self._open(info)
        device_id = device_tag(device) if device is not None else None
        item = Admitted(
            event_id,
            who,
            purchase_key(who, request_id, device_id),
            quantity,
            channel,
            buyer_ip,
            ip_tag(buyer_ip) if buyer_ip is not None else None,
            device_id,
        )
        admission = await self._admit(info, item)
        if admission.verdict == "admitted":
            return await self._commit(item)
        if admission.verdict == "duplicate":
            return await self._repeated(item, admission.state)
        if admission.verdict == "closed":
            self._events.pop(event_id, None)
            raise EventEnded(event_id)
        if admission.verdict == "sold_out":
            return Answer("sold_out")
        return await self._limit_reached(item)

    async def _limit_reached(self, item: Admitted) -> Answer:
        """The gate says this buyer has had its share; if that share is this very request, answer it as won.

        After a gate lost its request states (a restarted process, an emptied Redis) a
        retry of a purchase that did commit meets the buyer's limit: the buyer must
        still get the order number and pay link, or the order would expire unpaid.
        """
        async with self.db.read() as session:
            found = await service.purchases_by_key(session, item.event_id, {item.key})
            if item.key in found:
                return self._answer(await committer.order_of(session, found[item.key]), item.event_id)
        return Answer("limit_reached")

    async def ticket(self, ticket: str, *, device: str | None = None) -> Answer:
        """The answer to a queued purchase, from any process: the purchase row if it won, else what the gate knows.

        Only the device the ticket was issued to can open it (`device`, as given to `purchase`):
        to anyone else every ticket is `ticket_not_found`, whether or not it exists.
        """
        try:
            ref = (await self._ticket_issuer()).open(ticket, device_tag(device) if device is not None else None)
            if ref is None:
                raise TicketNotFound()
            # The gate first: a request it still calls pending may commit before the database is read, never after.
            state = await self.gate.request_state(ref.event_id, ref.key)
            if state == PENDING and ref.key in self._queued:
                # Still queued in this process: answering needs no database read, which the committer needs more.
                return Answer("queued", ticket=ticket)
            async with self.db.read() as session:
                found = await service.purchases_by_key(session, ref.event_id, {ref.key})
                if ref.key in found:
                    return self._answer(await committer.order_of(session, found[ref.key]), ref.event_id)
        except (RedisError, OSError, SQLAlchemyError) as exc:
            log.warning("flash-sale ticket look-up failed: %s", type(exc).__name__)
            raise Busy("the flash sale cannot answer right now; try again", retry_after=1) from exc
        if state == PENDING:
            return Answer("queued", ticket=ticket)
        if state == "sold_out":
            return Answer("sold_out")
        if state == "limit_reached":
            return Answer("limit_reached")
        if state == "closed":
            raise EventEnded(ref.event_id)
        raise TicketNotFound()

    async def public_event(self, event_id: int) -> PublicEventOut:
        """The event as a buyer sees it, with the units left according to the gate (for display only)."""
        info = await self._info(event_id)
        now = clock.now()
        status: Literal["scheduled", "live", "ended"] = "scheduled"
        if info.status == "ended" or now >= info.ends_at:
            status = "ended"
        elif now >= info.starts_at:
            status = "live"
        view = await self.gate_view(event_id) if status == "live" else None
        return PublicEventOut(
            id=info.id,
            name=info.name,
            sku_id=info.sku_id,
            starts_at=info.starts_at,
            ends_at=info.ends_at,
            price_minor=info.price_minor,
            currency=info.currency,
            per_buyer_limit=info.per_buyer_limit,
            requires_verified_buyer=info.requires_verified_buyer,
            status=status,
            remaining=view.tokens if view is not None else None,
        )

    # The operator's side ------------------------------------------------------------------------

    async def end_event(self, event_id: int, *, actor: str, ip: str | None = None) -> Event:
        """End an event now: its unsold allotment goes back to central stock, the gate closes."""
        async with self.db.transaction() as session:
            event = await service.end_event(self.db, session, event_id, actor=actor, ip=ip)
        self._events[event_id] = EventInfo.of(event)
        try:
            await self.gate.close(event_id, ttl_s=CLOSED_GATE_TTL_S)
        except (RedisError, OSError) as exc:  # the commits refuse an ended event anyway; reconciles close the gate
            log.warning("flash-sale gate of event %d not closed: %s", event_id, exc)
        return event

    async def details(self, event_id: int) -> EventOut:
        """The event with live counters: units won, units still held, and what the gate still admits."""
        async with self.db.read() as session:
            event = await service.get_event(session, event_id)
            counters = await service.counters(session, event)
        gate = await self.gate_view(event_id)
        return EventOut.of(event).model_copy(
            update={
                "sold": counters.sold,
                "purchases": counters.purchases,
                "held": counters.held,
                "gate_tokens": gate.tokens if gate is not None else None,
                "gate_open": gate.open if gate is not None else None,
            }
        )

    async def gate_view(self, event_id: int) -> GateView | None:
        """The gate's counters of an event (None: not loaded, or the gate cannot be reached)."""
        try:
            return await self.gate.view(event_id)
        except (RedisError, OSError) as exc:
            log.warning("flash-sale gate of event %d unreachable: %s", event_id, exc)
            return None

    async def reconcile(self, event_id: int) -> GateTruth:
        """Re-derive the event's gate from database truth (safe at any time: the gate may only err high)."""
        try:
            truth = await reconcile(self.db, self.gate, event_id)
        except (RedisError, OSError) as exc:
            raise Busy("the flash-sale gate cannot be reached; try again", retry_after=1) from exc
        self._events[event_id] = EventInfo.of(truth.event)
        if truth.open:
            self._active.add(event_id)
        else:
            self._active.discard(event_id)
        return truth

    async def run_due(self) -> int:
        """Start and end the events whose time has come (the worker's tick); returns how many changed."""
        changed = await self.db.run(lambda session: service.run_due(self.db, session))
        for event_id in changed:
            try:
                await self.reconcile(event_id)
            except Busy as exc:  # the gate catches up on its next reconcile; the database is already right
                log.warning("flash-sale gate of event %d not reconciled: %s", event_id, exc.message)
        return len(changed)

    async def close(self) -> None:
        """Stop reconciling and commit what is queued."""
        if self._reconciler is not None:
            self._reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconciler
        for batcher in self._committers.values():
            await batcher.close()

    # Admission ----------------------------------------------------------------------------------

    async def _info(self, event_id: int) -> EventInfo:
        info = self._events.get(event_id)
        if info is None:
            async with self.db.read() as session:
                info = EventInfo.of(await service.get_event(session, event_id))
            self._events[event_id] = info
        return info

    async def _open(self, info: EventInfo) -> EventInfo:
        """The event, started if its time has come; refused when it has not or is over.

        The first purchase of an event in this process starts it if need be and reconciles its
        gate: admissions lost by a crashed predecessor come back before anyone is told sold out.
        """
        event_id = info.id
        now = clock.now()
        if now < info.starts_at:
            raise EventNotStarted(event_id, info.starts_at.isoformat())
        if event_id not in self._active and info.status != "ended" and now < info.ends_at:
            async with self._lock(event_id):
                if event_id not in self._active:
                    if self._events.get(event_id, info).status == "scheduled":
                        await self.db.run(lambda session: service.start_if_due(self.db, session, event_id))
                    await self.reconcile(event_id)
            info = self._events.get(event_id, info)
        if info.status != "live" or now >= info.ends_at:
            raise EventEnded(event_id)
        self._keep_reconciling()
        return info

    async def _admit(self, info: EventInfo, item: Admitted) -> Admission:
        for _ in range(2):
            admission = await self.gate.admit(
                item.event_id,
                buyer_tag(item.buyer),
                item.quantity,
                limit=info.per_buyer_limit,
                request=item.key,
                now_ms=int(clock.now().timestamp() * 1000),
                stale_ms=self._settings.flash_stale_s * 1000,
                ip=item.ip_tag or "",
                ip_limit=info.per_ip_limit,
                device=item.device_tag or "",
                device_limit=info.per_device_limit,
            )
            if admission.verdict != "unloaded":
                return admission
            async with self._lock(item.event_id):
                if await self.gate.view(item.event_id) is None:
                    await self.reconcile(item.event_id)
        raise Busy("the flash-sale gate is not ready; try again", retry_after=1)

    async def _repeated(self, item: Admitted, state: str | None) -> Answer:
        """A request the gate has seen before: answer what became of it, never buy again."""
        if state == PENDING:
            return Answer("queued", ticket=await self._ticket_of(item))
        if state == "sold_out":
            return Answer("sold_out")
        if state == "limit_reached":
            return Answer("limit_reached")
        if state == "closed":
            raise EventEnded(item.event_id)
        async with self.db.read() as session:
            found = await service.purchases_by_key(session, item.event_id, {item.key})
            if item.key not in found:
                raise TicketNotFound()
            purchase = found[item.key]
            if purchase.quantity != item.quantity:
                raise IdempotencyConflict(
                    "this request_id was used for a different quantity", request_id_quantity=purchase.quantity
                )
            return self._answer(await committer.order_of(session, purchase), item.event_id)

    # Commit -------------------------------------------------------------------------------------

    async def _commit(self, item: Admitted) -> Answer:
        self._in_flight[item.event_id] = self._in_flight.get(item.event_id, 0) + 1
        waiting = asyncio.create_task(self._committer(item.event_id).submit(item))
        # The task outlives a buyer who stops waiting; its outcome is recorded for the ticket.
        self._waiting.add(waiting)
        self._queued.add(item.key)
        waiting.add_done_callback(self._waited)
        waiting.add_done_callback(lambda _task: self._queued.discard(item.key))
        try:
            committed = await asyncio.wait_for(asyncio.shield(waiting), timeout=self._settings.flash_wait_s)
        except TimeoutError:
            return Answer("queued", ticket=await self._ticket_of(item))
        except CommitFailed:
            raise
        except Busy:  # the queue refused it: it never reached the database, its admission goes back
            await self._settle(item.event_id, [_given_back(item)], tokens_cap=None)
            raise
        return self._answer(committed, item.event_id)

    def _waited(self, task: "asyncio.Task[Committed]") -> None:
        self._waiting.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here: the buyer may have stopped waiting long ago

    def _committer(self, event_id: int) -> GroupCommitter[Admitted, Committed]:
        batcher = self._committers.get(event_id)
        if batcher is None:

            async def process(items: list[Admitted]) -> list[Committed | Exception]:
                return await self._commit_batch(event_id, items)

            batcher = GroupCommitter(
                process,
                max_batch=self._settings.flash_batch_max,
                max_queue=self._settings.flash_queue_max,
                name=f"flash-sale {event_id}",
            )
            self._committers[event_id] = batcher
        return batcher

    async def _commit_batch(self, event_id: int, items: list[Admitted]) -> list[Committed | Exception]:
        try:
            async with self.db.transaction() as session:
                batch = await committer.commit_batch(
                    self.db,
                    session,
                    payments.require_gateway(self._gateway),
                    event_id,
                    items,
                    hold_minutes=self._settings.hold_minutes,
                )
        except Exception as exc:
            log.warning("flash-sale batch of %d for event %d failed: %s", len(items), event_id, type(exc).__name__)
            await self._settle(event_id, [_given_back(item) for item in items], tokens_cap=None)
            return [
                CommitFailed("the flash sale could not record this purchase; nothing was bought, try again")
                for _ in items
            ]
        settlements = [_settlement(item, result) for item, result in zip(items, batch.results, strict=True)]
        await self._settle(event_id, settlements, tokens_cap=batch.held_left)
        return list(batch.results)

    async def _settle(self, event_id: int, settlements: Sequence[Settlement], *, tokens_cap: int | None) -> None:
        self._in_flight[event_id] = max(self._in_flight.get(event_id, 0) - len(settlements), 0)
        try:
            await self.gate.settle(event_id, settlements, tokens_cap=tokens_cap)
        except (RedisError, OSError) as exc:  # the database has the truth; the next reconcile repairs the gate
            log.warning("flash-sale gate of event %d not settled: %s", event_id, exc)

    def _answer(self, committed: Committed, event_id: int) -> Answer:
        if committed.outcome in ("won", "replayed") and committed.order_number is not None:
            return Answer(
                "won",
                order_no=committed.order_number,
                lookup_secret=self._order_keys.lookup_secret(committed.order_number),
                pay_url=payments.pay_path(committed.payment_token)
                if committed.payment_token and self._gateway is not None
                else None,
                quantity=committed.quantity,
                total_minor=committed.total_minor,
                currency=committed.currency,
                pay_before=committed.pay_before,
            )
        if committed.outcome == "sold_out":
            return Answer("sold_out")
        if committed.outcome == "limit_reached":
            return Answer("limit_reached")
        if committed.outcome == "closed":
            raise EventEnded(event_id)
        raise IdempotencyConflict("this request_id was used for a different purchase")

    # Plumbing -----------------------------------------------------------------------------------

    def _lock(self, event_id: int) -> asyncio.Lock:
        return self._locks.setdefault(event_id, asyncio.Lock())

    async def _ticket_of(self, item: Admitted) -> str:
        return (await self._ticket_issuer()).issue(item.event_id, item.key, item.device_tag)

    async def _ticket_issuer(self) -> Tickets:
        if self._tickets is None:
            async with self.db.transaction() as session:
                self._tickets = Tickets(await named_key(self.db, session, self._keyring, "flashsale.tickets"))
        return self._tickets

    def _keep_reconciling(self) -> None:
        if self._reconciler is None or self._reconciler.done():
            self._reconciler = asyncio.create_task(self._reconcile_forever(), name="flash-sale reconcile")

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.flash_reconcile_s)
            for event_id in sorted(self._active):
                if self._in_flight.get(event_id, 0):
                    continue
                try:
                    await self.reconcile(event_id)
                except Exception as exc:
                    log.warning("flash-sale reconcile of event %d failed: %s", event_id, type(exc).__name__)


def _given_back(item: Admitted, state: str | None = None) -> Settlement:
    return _settled(item, give_back=True, state=state)


def _settled(item: Admitted, *, give_back: bool, state: str | None) -> Settlement:
    tag = buyer_tag(item.buyer)
    return Settlement(tag, item.quantity, item.key, give_back, state, item.ip_tag or "", item.device_tag or "")


def _settlement(item: Admitted, result: Committed) -> Settlement:
    """A won purchase keeps its tokens; every other outcome gives them back and says why."""
    if result.outcome == "won":
        return _settled(item, give_back=False, state="won")
    state = {"replayed": "won", "conflict": None}.get(result.outcome, result.outcome)
    return _given_back(item, state)

"""The path of one purchase: gate → bounded queue → one transaction per batch → an answer or a ticket.

`FlashSale` is the per-process object (`Runtime.flash`) that strings the parts
together: `admission` (the event as this process knows it, the gate, reconciling
it with the database), `batches` (the per-event queues whose batches commit the
winners and settle the gate), `tickets` (for purchases still queued) and
`answers` (what the buyer is told). The buyer waits up to `flash_wait_s` for the
answer (in a storm not at all: `batches`); past that it gets a ticket to poll. A full queue refuses at once
(503 + Retry-After) and gives the admission back.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from kaquan.flashsale import committer, service
from kaquan.flashsale.admission import Admissions, admitted, buyer_of
from kaquan.flashsale.answers import Answer, answer_of_committed, answer_of_settled
from kaquan.flashsale.batches import CommitQueues
from kaquan.flashsale.committer import Admitted, Committed
from kaquan.flashsale.errors import EventEnded, NeedsRedis, TicketNotFound
from kaquan.flashsale.gate import PENDING, Gate, GateView
from kaquan.flashsale.keys import buyer_tag, is_device_token
from kaquan.flashsale.models import Event
from kaquan.flashsale.reconcile import GateTruth
from kaquan.flashsale.schemas import EventOut, PublicEventOut
from kaquan.flashsale.sold_out import SoldOutBoard
from kaquan.flashsale.tickets import TicketDesk
from kaquan.kit import clock, tasks
from kaquan.kit.config import Settings
from kaquan.kit.crypto import KeyRing
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput, Busy, DomainError, IdempotencyConflict
from kaquan.orders.service import OrderKeys
from kaquan.payments import service as payments
from kaquan.payments.gateway import Gateway

log = logging.getLogger(__name__)
CLOSED_GATE_TTL_S = 3600
Screen = Callable[[], Awaitable[None]]
"""A check run once the gate has admitted a purchase (risk control); raising gives the admission back."""


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
        self._order_keys = order_keys
        self._gateway = gateway
        # Several processes with a gate each would each admit the whole allotment: refuse instead.
        self._refuse = settings.serve_workers > 1 and not shared_gate
        self._queues = CommitQueues(db, settings, gate, gateway=gateway)
        self._admissions = Admissions(db, settings, gate, in_flight=self._queues.in_flight)
        self._tickets = TicketDesk(db, keyring)
        self._board = SoldOutBoard(gate.sold_out, max_age_s=settings.flash_sold_out_s, listening=gate.listening)
        gate.on_change(self._board.changed)
        self._watcher: asyncio.Task[None] | None = None
        self._learning: set[asyncio.Task[None]] = set()
        self._fresh: set[int] = set()  # sold-out events whose copy a task keeps fresh
        self._sold_out_s = settings.flash_sold_out_s
        self._warming: asyncio.Task[None] | None = None

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
        screen: Screen | None = None,
    ) -> Answer:
        """Try to buy `quantity` units of the event for `buyer`; retrying with the same `request_id` is safe.

        `device`: the client's device token (web.flash_api: its cookie or header). The purchase is
        bound to it: a retry must come from the same device, and the same (buyer, request_id) sent from
        any other device is a purchase of that device's own, never an answer with the first one's order.
        None only for in-process callers. `buyer_ip` and `device` are held to the event's per-address
        and per-device limits. `verified`: the contact a buyer token proves; when given it is the buyer,
        and an event requiring verified buyers refuses purchases without one. `screen`: run once the gate
        has admitted the purchase, before it is queued (risk control decides only on purchases that
        could win); when it raises, the admission goes back to the gate and the error propagates.
        """
        if self._refuse:
            raise NeedsRedis()
        payments.require_gateway(self._gateway)
        if not request_id or len(request_id) > 128:
            raise BadInput("a request_id of 1 to 128 characters is required", field="request_id")
        if device is not None and not is_device_token(device):
            raise BadInput("a device token is 22 to 128 characters of A-Z, a-z, 0-9, - and _", field="device")
        try:
            info = await self._admissions.info(event_id)
            who = buyer_of(info, buyer, quantity, channel=channel, verified=verified)
            info = await self._admissions.open(info)
            item = admitted(
                event_id,
                who,
                quantity,
                request_id,
                channel=channel,
                buyer_ip=buyer_ip,
                device=device,
                verified=verified is not None,
            )
            admission = await self._admissions.admit(info, item)
            if admission.verdict == "admitted":
                if screen is not None:
                    await self._screened(item, screen)
                committed = await self._queues.wait(item)
                if committed is None:
                    return Answer("queued", ticket=await self._tickets.issue(item))
                return self._answer(committed, event_id)
            if admission.verdict == "duplicate":
                return await self._repeated(item, admission.state)
            if admission.verdict == "closed":
                self._admissions.forget(event_id)
                raise EventEnded(event_id)
            if admission.verdict == "sold_out":
                self._learn(event_id)
                return Answer("sold_out")
            return await self._limit_reached(item)
        except (RedisError, OSError, SQLAlchemyError) as exc:
            log.warning("flash-sale purchase failed: %s", type(exc).__name__)
            raise Busy("the flash sale cannot take purchases right now; try again", retry_after=1) from exc

    async def _screened(self, item: Admitted, screen: Screen) -> None:
        try:
            await screen()
        except BaseException:
            await self._queues.give_back(item)
            raise

    def knows_sold_out(self, event_id: int) -> bool:
        """Whether this process holds the event's gate frozen at sold out (answers without a round trip)."""
        return self._board.get(event_id) is not None

    async def sold_out_known(self, event_id: int) -> bool:
        """`knows_sold_out`, waiting for the copy of the gate being read when the last one has just aged out."""
        return await self._board.current(event_id) is not None

    def sold_out_at_once(
        self,
        event_id: int,
        buyer: str,
        quantity: int,
        request_id: str,
        *,
        channel: str,
        buyer_ip: str,
        device: str,
        verified: str | None,
    ) -> bool:
        """Whether `purchase` would answer `sold_out`, known without a round trip (False: not known, ask `purchase`).

        True only when this process holds the event's gate frozen at sold out (`flashsale.sold_out`),
        the event is live, and the request passes every check `purchase` makes before the gate.
        """
        sold_out = self._board.get(event_id)
        info = self._admissions.known(event_id)
        if sold_out is None or info is None or self._refuse or self._gateway is None:
            return False
        now = clock.now()
        if info.status != "live" or not info.starts_at <= now < info.ends_at:
            return False
        if not request_id or len(request_id) > 128 or not is_device_token(device):
            return False
        try:
            who = buyer_of(info, buyer, quantity, channel=channel, verified=verified)
        except DomainError:
            return False
        item = admitted(
            event_id, who, quantity, request_id, channel=channel, buyer_ip=buyer_ip, device=device, verified=False
        )
        return sold_out.refuses(
            buyer=buyer_tag(who),
            quantity=quantity,
            limit=info.per_buyer_limit,
            request=item.key,
            ip=item.ip_tag or "",
            ip_limit=info.per_ip_limit,
            device=item.device_tag or "",
            device_limit=info.per_device_limit,
        )

    def _learn(self, event_id: int) -> None:
        """A purchase was told sold out: freeze the event's gate in the background, so the next ones need no gate."""
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self.gate.watch(), name="flash-sale changes")
        if event_id in self._fresh:
            if self._board.get(event_id) is not None:
                return  # held and kept fresh: requests that were on the slow path before the copy came need no new read
            learning = asyncio.create_task(self._board.learn(event_id))
        else:
            self._fresh.add(event_id)
            learning = asyncio.create_task(self._keep_fresh(event_id))
        self._learning.add(learning)
        learning.add_done_callback(self._learnt)

    async def _keep_fresh(self, event_id: int) -> None:
        """Copy the sold-out gate, and again every quarter of its age bound for as long as it stays sold out.

        So a burst after a quiet spell finds a fresh copy, never a thousand requests on the slow path at once.
        A quarter, not a half: under a thousand connections a busy event loop takes a few hundred ms to turn
        each copy's round trip over, and at a half two such copies and the sleep's overshoot outlasted the
        bound, dropping the copy and sending every request the slow path at once (bench flash, 2026-12-07).
        """
        try:
            await self._board.learn(event_id)
            while self._board.get(event_id) is not None:
                await asyncio.sleep(self._sold_out_s / 4)
                await self._board.learn(event_id)
        finally:
            self._fresh.discard(event_id)

    def _learnt(self, task: "asyncio.Task[None]") -> None:
        self._learning.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("flash-sale sold-out copy failed: %s", type(task.exception()).__name__)

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

    async def _repeated(self, item: Admitted, state: str | None) -> Answer:
        """A request the gate has seen before: answer what became of it, never buy again."""
        if state == PENDING:
            return Answer("queued", ticket=await self._tickets.issue(item))
        settled = answer_of_settled(state, item.event_id)
        if settled is not None:
            return settled
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

    async def ticket(self, ticket: str, *, device: str | None = None) -> Answer:
        """The answer to a queued purchase, from any process: the purchase row if it won, else what the gate knows.

        Only the device the ticket was issued to can open it (`device`, as given to `purchase`):
        to anyone else every ticket is `ticket_not_found`, whether or not it exists.
        """
        try:
            ref = await self._tickets.open(ticket, device)
            if ref is None:
                raise TicketNotFound()
            committed = self._queues.committed(ref.event_id, ref.key)
            if committed is not None:  # committed here lately: final, and known without a round trip
                return self._answer(committed, ref.event_id)
            # The gate first: a request it still calls pending may commit before the database is read, never after.
            state = await self.gate.request_state(ref.event_id, ref.key)
            if state == PENDING and self._queues.is_queued(ref.key):
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
        settled = answer_of_settled(state, ref.event_id)
        if settled is not None:
            return settled
        raise TicketNotFound()

    async def warm(self) -> None:
        """Get this process ready for a storm while it is quiet: at start-up, when an event is still to come or live."""
        async with self.db.read(single_statement=True) as session:
            coming = await service.unfinished(session)
        if coming:
            await self._queues.warm()

    async def public_event(self, event_id: int) -> PublicEventOut:
        """The event as a buyer sees it, with the units left according to the gate (for display only).

        Buyers open the event before it starts: a process that shows one still to come gets ready for its storm.
        """
        info = await self._admissions.info(event_id)
        now = clock.now()
        status: Literal["scheduled", "live", "ended"] = "scheduled"
        if info.status == "ended" or now >= info.ends_at:
            status = "ended"
        elif now >= info.starts_at:
            status = "live"
        if status != "ended":
            self._warm_in_background()
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

    def _warm_in_background(self) -> None:
        if self._warming is None:
            self._warming = asyncio.create_task(self._queues.warm(), name="flash-sale warm-up")
            self._warming.add_done_callback(self._warmed)

    def _warmed(self, task: "asyncio.Task[None]") -> None:
        if not task.cancelled() and task.exception() is not None:
            log.warning("flash-sale commit connections not opened ahead: %s", type(task.exception()).__name__)
            self._warming = None  # the next look at a coming event tries again

    def _answer(self, committed: Committed, event_id: int) -> Answer:
        return answer_of_committed(committed, event_id, order_keys=self._order_keys, gateway=self._gateway)

    # The operator's side ------------------------------------------------------------------------

    async def end_event(self, event_id: int, *, actor: str, ip: str | None = None) -> Event:
        """End an event now: its unsold allotment goes back to central stock, the gate closes."""
        async with self.db.transaction() as session:
            event = await service.end_event(self.db, session, event_id, actor=actor, ip=ip)
        self._admissions.remember(event)
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

    def queued(self, event_id: int) -> int:
        """Purchases of the event admitted by this process and still waiting for their batch to settle."""
        return self._queues.waiting(event_id)

    async def gate_view(self, event_id: int) -> GateView | None:
        """The gate's counters of an event (None: not loaded, or the gate cannot be reached)."""
        try:
            return await self.gate.view(event_id)
        except (RedisError, OSError) as exc:
            log.warning("flash-sale gate of event %d unreachable: %s", event_id, exc)
            return None

    async def reconcile(self, event_id: int) -> GateTruth:
        """Re-derive the event's gate from database truth (safe at any time: the gate may only err high)."""
        return await self._admissions.reconcile(event_id)

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
        """Stop reconciling and listening, and commit what is queued."""
        await self._admissions.close()
        for task in list(self._learning):
            await tasks.stop(task)
        await tasks.stop(self._watcher)
        await tasks.stop(self._warming)
        await self._queues.close()

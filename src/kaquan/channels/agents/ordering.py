"""Agent orders: paid from the prepaid balance in the same transaction that allocates the codes.

One hot agent would make its balance row the bottleneck if every order locked
it in a transaction of its own. So the orders of one agent pass through a
group committer (`kit.batching`): each batch locks the balance once, decides
every order of the batch against it in memory (in arrival order, refusing or
partly filling what the balance cannot cover), allocates the codes of the
whole batch in a few statements, and books all its debits with one balance
update. The ledger's floor check (and its CHECK constraint) still guards
every commit, so no concurrency can take the balance below minus the limit.
The codes' cost of goods is not booked here, where every batch of every agent
would queue on the one `cogs` and `inventory` rows: the batch writes one outbox
event and the worker books it (`accounting.book_deliveries_later`).

Orders in "async" mode are accepted and paid the same way but filled by the
worker (`channels.tasks`); if stock has run out by then, the order is refunded
to the balance. Every state change is sent to the agent's callback URL.
"""

import asyncio
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import accounting, ledger
from kaquan.channels import booking, schemas
from kaquan.channels import pricing as channels
from kaquan.channels.agents import code_encryption
from kaquan.channels.agents.authentication import AgentCaller
from kaquan.channels.callbacks import service as callbacks
from kaquan.channels.errors import AgentOrderNotFound, SkuNotAvailableForAgent
from kaquan.channels.models import Agent, Channel
from kaquan.inventory import DeliveredCode, OutOfStock, Vault, Viewer, allocation, codes_handed_out, codes_of_orders
from kaquan.kit import outbox
from kaquan.kit.batching import GroupCommitter
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput, DomainError, IdempotencyConflict
from kaquan.ledger.errors import InsufficientFunds
from kaquan.orders import batch_placing, lifecycle
from kaquan.orders import service as orders
from kaquan.orders.errors import InvalidQuantity, check_quantity
from kaquan.orders.service import Order

CHANNEL = "api"
OUT_ORDER_NO = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
DISPLAY_CAP = 1000
"""The open API shows at most this many units of stock per SKU."""
FULFIL_TOPIC = "agent_order.fulfil"
Mode = Literal["sync", "async"]


@dataclass(frozen=True)
class AgentOrderRequest:
    out_order_no: str
    sku: str
    quantity: int
    mode: Mode = "sync"
    allow_partial: bool = False

    def fingerprint(self) -> bytes:
        body = {"sku": self.sku, "quantity": self.quantity, "mode": self.mode, "allow_partial": self.allow_partial}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()


@dataclass(frozen=True)
class AgentOrder:
    """An agent's order as the agent sees it; `codes` only when delivered and asked for."""

    order: Order
    sku_code: str
    created: bool
    codes: list[DeliveredCode] = field(default_factory=list)


def source_of(agent_id: int) -> str:
    return str(agent_id)


def sold_here(priced: channels.PricedSku) -> bool:
    """Whether the open API sells this SKU: unique codes only (serial ranges have no batched path yet)."""
    return priced.sku.stock_kind == "codes"


async def catalogue(session: AsyncSession, agent: Agent) -> list[channels.PricedSku]:
    """What this agent can buy through the open API, at its prices."""
    channel = await channels.get_channel(session, CHANNEL)
    if not channel.active:
        raise channels.ChannelInactive(channel.code)
    return [priced for priced in await channels.price_list(session, channel, agent.tier) if sold_here(priced)]


async def products(session: AsyncSession, agent: Agent, *, max_per_order: int) -> schemas.AgentProductsOut:
    """The catalogue with each SKU's stock, shown up to DISPLAY_CAP units, and its per-order cap."""
    listed = []
    for priced in await catalogue(session, agent):
        available = await allocation.available_units(session, priced.sku)
        listed.append(
            schemas.AgentProductOut(
                sku=priced.sku.code,
                name=priced.sku.name,
                price_minor=priced.price_minor,
                currency=priced.currency,
                in_stock=available > 0,
                available=min(available, DISPLAY_CAP),
                max_per_order=min(priced.sku.max_per_order, max_per_order),
            )
        )
    return schemas.AgentProductsOut(products=listed)


def order_out(
    order: Order, sku_code: str, caller: AgentCaller, codes: Sequence[DeliveredCode]
) -> schemas.AgentOrderOut:
    """An order as the agent sees it, its codes encrypted for the key that signed the request."""
    key = caller.code_key if codes else b""
    return schemas.AgentOrderOut(
        **dict(schemas.order_summary(order, sku_code)), codes=code_encryption.encrypt_codes(key, codes, order.number)
    )


async def opened(
    session: AsyncSession, vault: Vault, caller: AgentCaller, out_order_no: str, viewer: Viewer
) -> schemas.AgentOrderOut:
    """One of the caller's orders, with its codes if delivered (opening them records the reveal)."""
    order = await find(session, caller.agent, out_order_no)
    sku = await orders.sku_of(session, order)
    codes: list[DeliveredCode] = []
    if order.status == "delivered":
        codes = (await codes_of_orders(session, vault, [order.id], viewer)).get(order.id, [])
    return order_out(order, sku.code, caller, codes)


def _check(request: AgentOrderRequest, max_per_order: int) -> None:
    if not OUT_ORDER_NO.fullmatch(request.out_order_no):
        raise BadInput("out_order_no is 1-64 characters of A-Z a-z 0-9 _ . : -", field="out_order_no")
    check_quantity(request.quantity, max_per_order)
    if request.mode not in ("sync", "async"):
        raise BadInput("mode is sync or async", field="mode")


@dataclass(frozen=True)
class _Job:
    agent: Agent
    request: AgentOrderRequest
    viewer: Viewer


@dataclass(frozen=True)
class _Placed:
    order_id: int
    created: bool
    code_ids: tuple[int, ...] = ()  # of a new delivered order: the codes it was just handed


@dataclass(frozen=True)
class _Answer:
    """What the batch hands back to one request: its order, and for a new delivered order its opened codes."""

    order: Order
    created: bool
    codes: list[DeliveredCode]


class AgentOrders:
    """The open API's order desk: one group committer per agent, shared by every request of this process."""

    def __init__(self, db: Database, vault: Vault, *, max_per_order: int, max_batch: int = 200) -> None:
        self._db = db
        self._vault = vault
        self._max_per_order = max_per_order
        self._max_batch = max_batch
        self._desks: dict[int, GroupCommitter[_Job, _Answer]] = {}

    async def close(self) -> None:
        for desk in self._desks.values():
            await desk.close()

    def _desk(self, agent_id: int) -> GroupCommitter[_Job, _Answer]:
        desk = self._desks.get(agent_id)
        if desk is None:
            desk = self._desks[agent_id] = GroupCommitter(
                self._commit, max_batch=self._max_batch, name=f"agent {agent_id} orders"
            )
        return desk

    async def place(self, agent: Agent, request: AgentOrderRequest, viewer: Viewer) -> AgentOrder:
        """Place (or replay) an order; a sync order comes back delivered with its codes opened."""
        _check(request, self._max_per_order)
        answer = await self._desk(agent.id).submit(_Job(agent, request, viewer))
        codes = answer.codes
        if not answer.created and answer.order.status == "delivered":  # a retry: open its codes again
            async with self._db.transaction() as session:
                codes = (await codes_of_orders(session, self._vault, [answer.order.id], viewer)).get(
                    answer.order.id, []
                )
        return AgentOrder(answer.order, request.sku, answer.created, codes)

    async def place_many(
        self, agent: Agent, requests: Sequence[AgentOrderRequest], viewer: Viewer
    ) -> list[AgentOrder | DomainError]:
        """Several orders in one call: each placed (or refused) on its own, all through one batch where they fit."""
        answers = await asyncio.gather(*(self.place(agent, r, viewer) for r in requests), return_exceptions=True)
        for answer in answers:
            if isinstance(answer, BaseException) and not isinstance(answer, DomainError):
                raise answer
        return [answer for answer in answers if isinstance(answer, AgentOrder | DomainError)]

    async def _commit(self, jobs: list[_Job]) -> list[_Answer | Exception]:
        """Decide the batch on the balance as read, locking it only to debit; if it was spent meanwhile, redo locked.

        The optimistic pass lets batches of one agent from several server
        processes overlap (the balance row is locked only from the debit to the
        commit). Its debit is guarded, so a balance spent by someone else since
        the read fails the whole pass, which rolls back and is decided again under
        the balance's lock (what a nearly empty balance needs anyway).
        """

        def attempt(locked: bool) -> Callable[[AsyncSession], Awaitable[list[_Answer | Exception]]]:
            async def work(session: AsyncSession) -> list[_Answer | Exception]:
                decided, booked = await _decide_batch(self._db, session, jobs, locked=locked)
                loaded = await orders.by_ids(session, [d.order_id for d in decided if isinstance(d, _Placed)])
                if booked.events:
                    await _announce(session, jobs[0].agent, booked, loaded)
                return await _answers(session, self._vault, jobs, decided, loaded)

            return work

        try:
            return await self._db.run(attempt(locked=False))
        except InsufficientFunds:
            return await self._db.run(attempt(locked=True))


async def _announce(session: AsyncSession, agent: Agent, booked: "_Booked", loaded: Mapping[int, Order]) -> None:
    """The batch's callbacks, each carrying its order as the open API shows it, and for the worker the async
    orders to fill and the delivered orders' cost of goods (booked later, off the agents' path)."""
    events = [(event, schemas.order_event_data(loaded[order_id], sku)) for event, order_id, sku in booked.events]
    await callbacks.notify_many(session, agent_id=agent.id, events=events)
    for order_id in booked.to_fill:
        await outbox.enqueue(session, FULFIL_TOPIC, {"order_id": order_id})
    await accounting.book_deliveries_later(session, booked.delivered)


async def _answers(
    session: AsyncSession,
    vault: Vault,
    jobs: list[_Job],
    decided: list[_Placed | Exception],
    loaded: Mapping[int, Order],
) -> list[_Answer | Exception]:
    """The batch's orders (loaded in one query), the new deliveries' codes opened in one more per viewer."""
    fresh: dict[Viewer, dict[int, tuple[int, ...]]] = defaultdict(dict)
    for job, result in zip(jobs, decided, strict=True):
        if isinstance(result, _Placed) and result.created and loaded[result.order_id].status == "delivered":
            fresh[job.viewer][result.order_id] = result.code_ids
    opened: dict[int, list[DeliveredCode]] = {}
    for viewer, handed in fresh.items():
        opened.update(await codes_handed_out(session, vault, handed, viewer))
    return [
        _Answer(loaded[d.order_id], d.created, opened.get(d.order_id, []) if d.created else [])
        if isinstance(d, _Placed)
        else d
        for d in decided
    ]


async def _decide_batch(
    db: Database, session: AsyncSession, jobs: list[_Job], *, locked: bool
) -> tuple[list[_Placed | Exception], "_Booked"]:
    """Every job of one agent's batch: replay, refuse, or place and pay, against one balance.

    `locked`: the balance is locked first and the batch decided under the lock;
    otherwise it is read unlocked and the debit at the end is guarded (it raises
    `InsufficientFunds` when the balance was spent meanwhile).
    """
    agent = jobs[0].agent
    answers: dict[int, _Placed | Exception] = {}
    known = await batch_placing.known_keys(
        session, CHANNEL, source_of(agent.id), [job.request.out_order_no for job in jobs]
    )
    if locked:
        balance = await ledger.locked_balance(db, session, agent.account_id)
    else:
        balance = await ledger.balance(session, agent.account_id)
    spendable = balance.spendable_minor
    channel = await channels.get_channel(session, CHANNEL)
    by_sku: dict[str, list[tuple[int, batch_placing.BulkOrder, int]]] = defaultdict(list)
    prices: dict[str, channels.PricedSku] = {}
    for index, job in enumerate(jobs):
        request = job.request
        earlier = known.get(request.out_order_no)
        if earlier is not None:
            answers[index] = _replay(earlier, request)
            continue
        try:
            priced = prices.get(request.sku) or await channels.price_for(session, channel, agent.tier, request.sku)
        except DomainError as exc:
            answers[index] = exc
            continue
        prices[request.sku] = priced
        if not sold_here(priced):
            answers[index] = SkuNotAvailableForAgent(request.sku)
            continue
        try:
            check_quantity(request.quantity, priced.sku.max_per_order)
        except InvalidQuantity as exc:
            answers[index] = exc
            continue
        quantity = _affordable(request, priced.price_minor, spendable, balance, agent)
        if isinstance(quantity, Exception):
            answers[index] = quantity
            continue
        if spendable is not None:
            spendable -= quantity * priced.price_minor
        by_sku[request.sku].append(
            (
                index,
                batch_placing.BulkOrder(
                    request.out_order_no,
                    quantity,
                    request.fingerprint(),
                    min_quantity=1 if request.allow_partial else None,
                    requested=request.quantity,
                ),
                quantity,
            )
        )
    booked = _Booked(await booking.sales_account(db, session, agent, agent.currency) if by_sku else 0)
    for sku_code, entries in by_sku.items():
        priced = prices[sku_code]
        wanted = [entry for _, entry, _ in entries]
        placed = await _place_sku(db, session, channel, agent, priced, wanted, jobs, known)
        for (index, _, _), result in zip(entries, placed, strict=True):
            answers[index] = _settle(agent, priced, result, jobs[index].request, booked)
    if booked.transfers:
        post = ledger.post_many if locked else ledger.post_many_locking_last
        await post(db, session, booked.transfers, actor=f"agent:{agent.code}")
    return [answers[index] for index in range(len(jobs))], booked


def _affordable(
    request: AgentOrderRequest, price: int, spendable: int | None, balance: ledger.Balance, agent: Agent
) -> int | Exception:
    """How many units the balance covers: all, a partial fill if the agent allows one, or a refusal."""
    if spendable is None or price == 0 or request.quantity * price <= spendable:
        return request.quantity
    if request.allow_partial and spendable >= price:
        return spendable // price
    return InsufficientFunds(
        f"agent:{agent.code}",
        balance_minor=(balance.floor_minor or 0) + spendable,
        floor_minor=balance.floor_minor or 0,
        needed_minor=request.quantity * price,
    )


async def _place_sku(
    db: Database,
    session: AsyncSession,
    channel: Channel,
    agent: Agent,
    priced: channels.PricedSku,
    wanted: list[batch_placing.BulkOrder],
    jobs: list[_Job],
    known: Mapping[str, batch_placing.KnownOrder],
) -> list[batch_placing.BulkPlaced]:
    room = await channels.quota_room(db, session, channel, priced.sku)
    allowed = wanted if room is None else _within_quota(wanted, room)
    asynchronous = {job.request.out_order_no for job in jobs if job.request.mode == "async"}
    sync_orders = [order for order in allowed if order.idempotency_key not in asynchronous]
    async_orders = [order for order in allowed if order.idempotency_key in asynchronous]
    results: dict[str, batch_placing.BulkPlaced] = {}
    warehouses = await channels.warehouse_order(session, channel)
    for status, batch in (("delivered", sync_orders), ("processing", async_orders)):
        if not batch:
            continue
        placed = await batch_placing.place_many(
            db,
            session,
            priced.sku,
            batch,
            channel=CHANNEL,
            source=source_of(agent.id),
            unit_price_minor=priced.price_minor,
            currency=priced.currency,
            status=status,  # type: ignore[arg-type]
            warehouses=warehouses,
            known=known,
        )
        results.update({p.idempotency_key: p for p in placed})
    return [
        results.get(order.idempotency_key) or batch_placing.BulkPlaced(order.idempotency_key, "out_of_stock")
        for order in wanted
    ]


def _within_quota(wanted: list[batch_placing.BulkOrder], room: int) -> list[batch_placing.BulkOrder]:
    """Orders beyond the channel's quota are left out (they answer out_of_stock)."""
    kept = []
    for order in wanted:
        if order.quantity <= room:
            kept.append(order)
            room -= order.quantity
    return kept


@dataclass
class _Booked:
    """What a batch's new orders add up to: ledger transfers, callbacks, async orders and deliveries for the worker."""

    sales_account_id: int
    transfers: list[ledger.TransferSpec] = field(default_factory=list)
    events: list[tuple[str, int, str]] = field(default_factory=list)  # (event type, order id, SKU code)
    to_fill: list[int] = field(default_factory=list)
    delivered: list[int] = field(default_factory=list)


def _settle(
    agent: Agent,
    priced: channels.PricedSku,
    placed: batch_placing.BulkPlaced,
    request: AgentOrderRequest,
    booked: _Booked,
) -> _Placed | Exception:
    if placed.outcome == "out_of_stock":
        return OutOfStock(priced.sku.id, wanted=request.quantity, available=0)
    if placed.outcome == "conflict":
        return _conflict(request.out_order_no)
    assert placed.order_id is not None and placed.number is not None  # noqa: S101 - placed and replayed have both
    if placed.outcome == "replayed":
        return _Placed(placed.order_id, created=False)
    if priced.price_minor:  # a free SKU moves no money (and a transfer of nothing is no transfer)
        booked.transfers.append(
            booking.sale(agent, booked.sales_account_id, placed.number, placed.quantity * priced.price_minor)
        )
    event = "order.delivered" if placed.status == "delivered" else "order.processing"
    booked.events.append((event, placed.order_id, request.sku))
    if placed.status == "processing":
        booked.to_fill.append(placed.order_id)
    else:
        booked.delivered.append(placed.order_id)
    return _Placed(placed.order_id, created=True, code_ids=placed.code_ids)


def _conflict(out_order_no: str) -> IdempotencyConflict:
    return IdempotencyConflict("this out_order_no was used for a different order", out_order_no=out_order_no)


def _replay(earlier: batch_placing.KnownOrder, request: AgentOrderRequest) -> _Placed | Exception:
    if earlier.request_hash != request.fingerprint():
        return _conflict(request.out_order_no)
    return _Placed(earlier.order_id, created=False)


async def find(session: AsyncSession, agent: Agent, out_order_no: str) -> Order:
    order = await orders.by_key(session, channel=CHANNEL, source=source_of(agent.id), key=out_order_no)
    if order is None:
        raise AgentOrderNotFound(out_order_no)
    return order


async def out_order_nos(session: AsyncSession, agent: Agent, numbers: Iterable[str]) -> dict[str, str]:
    """The agent's out_order_no of each of its orders among these order numbers."""
    return await orders.keys_of(session, channel=CHANNEL, source=source_of(agent.id), numbers=numbers)


async def between(
    session: AsyncSession, agent: Agent, since: datetime, until: datetime, *, after_id: int | None, limit: int
) -> list[Order]:
    """The agent's orders created in [since, until), oldest first, after the cursor."""
    return await orders.of_source(
        session, channel=CHANNEL, source=source_of(agent.id), since=since, until=until, after_id=after_id, limit=limit
    )


async def fulfil(db: Database, session: AsyncSession, order_id: int) -> Order:
    """Fill an accepted async order: its codes now, or a refund to the balance when stock ran out."""
    order = await orders.locked(db, session, order_id)
    if order.status != "processing":
        return order
    agent = (await session.execute(select(Agent).where(Agent.id == int(order.source)))).scalar_one()
    channel = await channels.get_channel(session, CHANNEL)
    sku = await orders.sku_of(session, order)
    try:
        async with session.begin_nested():
            await allocation.sell_now(
                db,
                session,
                sku,
                order.quantity,
                order_id=order.id,
                warehouses=await channels.warehouse_order(session, channel),
            )
    except OutOfStock:
        await lifecycle.move(session, order, "refunded", note="out of stock when filled; refunded to the balance")
        if order.total_minor:
            refund = await booking.refund(db, session, agent, order.number, order.total_minor)
            await ledger.post(db, session, refund, actor="worker")
        await callbacks.notify(
            session, agent_id=agent.id, event_type="order.refunded", data=schemas.order_event_data(order, sku.code)
        )
        return order
    await lifecycle.move(session, order, "delivered")
    await accounting.book_deliveries_later(session, [order.id])
    await callbacks.notify(
        session, agent_id=agent.id, event_type="order.delivered", data=schemas.order_event_data(order, sku.code)
    )
    return order

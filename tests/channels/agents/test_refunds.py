"""After-sale refunds of delivered agent orders: codes voided for good, the price back to the deposit, once.

A refund is refused whole (and changes nothing) for an unknown order, an order that
is not delivered, an order with a redeemed code, or a missing or overlong reason.
Refunding a refunded order answers as it is and moves nothing again.
"""

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from tests.support.agents import GivenAgent, agent_client, given_agent, given_price
from tests.support.builders import GivenSku, given_sku_with_codes, stock_of
from tests.support.cli import Kaquan, one_line
from tests.support.identity import HeadersFor
from tests.support.loops import in_own_loop
from tests.support.races import each_reads_before_any_writes
from tests.support.vouchers import given_voucher_sku, given_vouchers

from kaquan import ledger, redemption
from kaquan import runtime as runtime_module
from kaquan.audit.models import AuditEntry
from kaquan.channels.agents import accounts as agents
from kaquan.channels.agents import refunds
from kaquan.channels.agents.ordering import CHANNEL, source_of
from kaquan.channels.callbacks import service as callbacks
from kaquan.channels.callbacks.models import CallbackDelivery
from kaquan.channels.errors import AgentOrderNotFound, OrderNotRefundable
from kaquan.inventory.errors import IllegalTransition
from kaquan.inventory.levels import Stock
from kaquan.kit.config import Settings
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput
from kaquan.kit.money import display
from kaquan.ledger.models import LedgerTransfer
from kaquan.orders import service as orders_service
from kaquan.orders.models import Order, OrderEvent
from kaquan.runtime import Runtime

REASON = "the supplier's code was rejected at redemption"
PRICE = 800
DEPOSIT = 10_000
API = "/admin/api"
REFUND = ("channel", "agent", "refund")


@dataclass(frozen=True)
class Sold:
    """A delivered agent order, as the agent received it."""

    sku: GivenSku
    agent: GivenAgent
    out_order_no: str
    secrets: tuple[str, ...]


async def given_delivered_order(rt: Runtime, *, quantity: int = 2, stock: int = 5, sku: GivenSku | None = None) -> Sold:
    sku = sku or await given_sku_with_codes(rt, stock)
    await given_price(rt, sku.code, PRICE)
    agent = await given_agent(rt, deposit_minor=DEPOSIT)
    async with agent_client(rt, agent) as kq:
        order = await kq.place_order("A-1", sku.code, quantity)
    assert order.status == "delivered"
    return Sold(sku, agent, "A-1", tuple(code.secret for code in order.codes))


async def refund(
    rt: Runtime, agent: GivenAgent, out_order_no: str = "A-1", reason: str = REASON, *, agent_id: int | None = None
) -> refunds.Refund:
    async with rt.db.transaction() as session:
        return await refunds.refund_delivered(
            rt.db,
            session,
            agent_id=agent.id if agent_id is None else agent_id,
            out_order_no=out_order_no,
            reason=reason,
            actor="finance-1",
        )


async def balance(rt: Runtime, agent: GivenAgent) -> int:
    async with rt.db.read() as session:
        return (await ledger.balance(session, (await agents.get_agent(session, agent.id)).account_id)).balance_minor


async def order_of(rt: Runtime, agent: GivenAgent, out_order_no: str = "A-1") -> Order:
    async with rt.db.read() as session:
        found = await orders_service.by_key(session, channel=CHANNEL, source=source_of(agent.id), key=out_order_no)
    assert found is not None
    return found


async def count(rt: Runtime, table: Any, *where: Any) -> int:
    async with rt.db.read() as session:
        return int((await session.execute(select(func.count()).select_from(table).where(*where))).scalar_one())


@dataclass(frozen=True)
class World:
    """What a refund moves: what a refused one must leave exactly as it was."""

    balance_minor: int
    stock: Stock
    status: str
    transfers: int
    order_events: int
    audit_entries: int
    callbacks: int


async def world(rt: Runtime, sold: Sold, out_order_no: str = "A-1") -> World:
    order = await order_of(rt, sold.agent, out_order_no)
    return World(
        await balance(rt, sold.agent),
        await stock_of(rt, sold.sku),
        order.status,
        await count(rt, LedgerTransfer),
        await count(rt, OrderEvent, OrderEvent.order_id == order.id),
        await count(rt, AuditEntry),
        await count(rt, CallbackDelivery),
    )


async def given_callback_endpoint(rt: Runtime, agent: GivenAgent) -> None:
    """An endpoint the agent's events are queued for (nothing here sends them)."""
    async with rt.db.transaction() as session:
        await callbacks.set_endpoint(
            rt.db,
            session,
            rt.keyring,
            agent_id=agent.id,
            url=f"http://127.0.0.1:9/agents/{agent.id}",
            allow_private=True,
            actor="test",
        )


# --- a refund ---------------------------------------------------------------------------------------


async def test_a_refund_voids_the_codes_and_credits_the_price_back_exactly_once(rt: Runtime) -> None:
    sold = await given_delivered_order(rt, quantity=2, stock=5)
    assert await balance(rt, sold.agent) == DEPOSIT - 2 * PRICE

    first = await refund(rt, sold.agent)
    after_first = await world(rt, sold)
    again = await refund(rt, sold.agent, reason="clicked twice")

    assert (first.refunded, first.order.status, first.order.total_minor) == (True, "refunded", 2 * PRICE)
    assert (again.refunded, again.order.status, again.order.number) == (False, "refunded", first.order.number)
    assert await world(rt, sold) == after_first, "the second call moves nothing"
    assert await balance(rt, sold.agent) == DEPOSIT
    stock = await stock_of(rt, sold.sku)
    assert (stock.available, stock.sold, stock.voided, stock.adds_up) == (3, 0, 2, True)
    async with rt.db.read() as session:
        assert (await ledger.check(session)).ok
        account = (await agents.get_agent(session, sold.agent.id)).account_id
        postings = await ledger.entries(session, account, after_id=None, limit=10)
        history = await orders_service.events_of(session, first.order.id)
    assert [(p.kind, p.amount_minor, p.reference) for p in postings if p.kind == "refund"] == [
        ("refund", 2 * PRICE, f"refund:{first.order.number}")
    ]
    assert [(e.from_status, e.to_status, e.note) for e in history][-1] == ("delivered", "refunded", REASON)


async def test_a_refund_is_audited_once_with_its_reason_and_no_code_secret(rt: Runtime) -> None:
    sold = await given_delivered_order(rt, quantity=2)

    order = (await refund(rt, sold.agent)).order
    await refund(rt, sold.agent)

    async with rt.db.read() as session:
        found = (
            (await session.execute(select(AuditEntry).where(AuditEntry.action == "agent_order.refunded")))
            .scalars()
            .all()
        )
    [entry] = found
    assert (entry.actor, entry.target, entry.before) == ("finance-1", f"order:{order.number}", {"status": "delivered"})
    assert entry.after == {
        "status": "refunded",
        "agent": "acme",
        "out_order_no": "A-1",
        "units_voided": 2,
        "amount_minor": 2 * PRICE,
        "currency": "CNY",
        "reason": REASON,
    }
    assert not any(secret in str(entry.after) for secret in sold.secrets)


async def test_the_agent_sees_the_order_refunded_without_its_codes(rt: Runtime) -> None:
    sold = await given_delivered_order(rt)

    await refund(rt, sold.agent)
    async with agent_client(rt, sold.agent) as kq:
        seen = await kq.order("A-1")
        replayed = await kq.place_order("A-1", sold.sku.code, 2)

    assert (seen.status, seen.codes) == ("refunded", ())
    assert (replayed.status, replayed.codes) == ("refunded", ()), "a retry of the order does not sell it again"
    assert await balance(rt, sold.agent) == DEPOSIT


async def test_a_refund_queues_one_order_refunded_callback_when_the_agent_has_an_endpoint(rt: Runtime) -> None:
    sold = await given_delivered_order(rt)
    await given_callback_endpoint(rt, sold.agent)

    first = await refund(rt, sold.agent)
    await refund(rt, sold.agent)

    async with rt.db.read() as session:
        queued = (
            (await session.execute(select(CallbackDelivery).where(CallbackDelivery.event_type == "order.refunded")))
            .scalars()
            .all()
        )
    [delivery] = queued
    assert (delivery.agent_id, delivery.status) == (sold.agent.id, "pending")
    order = delivery.payload["order"]
    assert (order["order_no"], order["out_order_no"], order["status"]) == (first.order.number, "A-1", "refunded")
    assert "codes" not in order


async def test_a_refunded_orders_vouchers_can_no_longer_be_redeemed(rt: Runtime) -> None:
    sku = await given_voucher_sku(rt)
    await given_vouchers(rt, sku, 2, sold=False)
    sold = await given_delivered_order(rt, quantity=1, sku=sku)

    await refund(rt, sold.agent)

    with pytest.raises(redemption.VoucherVoided):
        await redeem(rt, sold.secrets[0])


# --- refusals ---------------------------------------------------------------------------------------


async def redeem(rt: Runtime, code: str) -> None:
    request = redemption.RedeemRequest(code=code, nonce=secrets.token_hex(8), device_id="till-1", location="Shop 1")
    async with rt.db.transaction() as session:
        await redemption.redeem(rt.db, session, rt.vault, request, actor="clerk", ip=None)


async def test_an_order_with_a_redeemed_code_is_not_refunded_and_nothing_changes(rt: Runtime) -> None:
    sku = await given_voucher_sku(rt)
    await given_vouchers(rt, sku, 3, sold=False)
    sold = await given_delivered_order(rt, quantity=2, sku=sku)
    await redeem(rt, sold.secrets[0])
    before = await world(rt, sold)

    with pytest.raises(OrderNotRefundable) as refused:
        await refund(rt, sold.agent)

    assert (refused.value.status, refused.value.code) == (409, "order_not_refundable")
    assert "redeemed" in refused.value.message
    assert await world(rt, sold) == before


async def test_a_refund_started_while_a_code_is_being_redeemed_waits_and_is_refused(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The redemption has locked its code and dawdles; the refund must count that code once the redemption
    commits (redeemed), not as the sold code it was before, and refuse cleanly rather than void half an order."""
    sku = await given_voucher_sku(rt)
    await given_vouchers(rt, sku, 3, sold=False)
    sold = await given_delivered_order(rt, quantity=2, sku=sku)
    before = await world(rt, sold)
    monkeypatch.setattr("kaquan.redemption.redeeming._pause_after_lookup", 0.5)

    redeeming = asyncio.create_task(redeem(rt, sold.secrets[0]))
    await asyncio.sleep(0.1)
    refused, _ = await asyncio.gather(refund(rt, sold.agent), redeeming, return_exceptions=True)

    assert isinstance(refused, OrderNotRefundable), refused
    stock = await stock_of(rt, sold.sku)
    assert (stock.redeemed, stock.voided) == (1, 0)
    assert (await balance(rt, sold.agent), (await order_of(rt, sold.agent)).status) == (
        before.balance_minor,
        "delivered",
    )


async def test_an_unknown_out_order_no_is_not_found_and_nothing_changes(rt: Runtime) -> None:
    sold = await given_delivered_order(rt)
    before = await world(rt, sold)

    with pytest.raises(AgentOrderNotFound) as refused:
        await refund(rt, sold.agent, "A-404")

    assert (refused.value.status, refused.value.code) == (404, "order_not_found")
    assert await world(rt, sold) == before


async def test_another_agents_order_is_not_found(rt: Runtime) -> None:
    sold = await given_delivered_order(rt)
    other = await given_agent(rt, code="other")
    before = await world(rt, sold)

    with pytest.raises(AgentOrderNotFound):
        await refund(rt, other)

    assert await world(rt, sold) == before


async def test_an_async_order_still_processing_is_not_refundable_and_nothing_changes(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 5)
    await given_price(rt, sku.code, PRICE)
    agent = await given_agent(rt, deposit_minor=DEPOSIT)
    async with agent_client(rt, agent) as kq:
        accepted = await kq.place_order("A-1", sku.code, 2, mode="async")
    assert accepted.status == "processing"
    sold = Sold(sku, agent, "A-1", ())
    before = await world(rt, sold)

    with pytest.raises(OrderNotRefundable) as refused:
        await refund(rt, agent)

    assert (refused.value.status, refused.value.code) == (409, "order_not_refundable")
    assert refused.value.details["status"] == "processing"
    assert await world(rt, sold) == before


@pytest.mark.parametrize("reason", ["", "   ", "x" * 301], ids=["empty", "blank", "too-long"])
async def test_a_missing_or_overlong_reason_is_bad_input_and_nothing_changes(rt: Runtime, reason: str) -> None:
    sold = await given_delivered_order(rt)
    before = await world(rt, sold)

    with pytest.raises(BadInput) as refused:
        await refund(rt, sold.agent, reason=reason)

    assert (refused.value.status, refused.value.details) == (400, {"field": "reason"})
    assert await world(rt, sold) == before


async def test_a_reason_of_300_characters_is_enough(rt: Runtime) -> None:
    sold = await given_delivered_order(rt)

    assert (await refund(rt, sold.agent, reason="x" * 300)).refunded


# --- two refunds at once ----------------------------------------------------------------------------


async def _race_two_refunds(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> tuple[Sold, list[refunds.Refund | BaseException]]:
    """Two refunds of one order at once, each dawdling after it read the order, so that the reads overlap."""
    sold = await given_delivered_order(rt)
    read_locked = orders_service.locked

    async def dawdling(db: Database, session: AsyncSession, order_id: int) -> Order:
        order = await read_locked(db, session, order_id)
        await asyncio.sleep(0.05)
        return order

    monkeypatch.setattr(orders_service, "locked", dawdling)
    outcomes = await asyncio.gather(refund(rt, sold.agent), refund(rt, sold.agent), return_exceptions=True)
    monkeypatch.undo()
    return sold, list(outcomes)


async def test_two_refunds_of_one_order_at_once_credit_it_once(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    sold, outcomes = await _race_two_refunds(rt, monkeypatch)

    refunded = [o.refunded for o in outcomes if isinstance(o, refunds.Refund)]
    assert sorted(refunded) == [False, True], outcomes
    assert await balance(rt, sold.agent) == DEPOSIT
    assert (await stock_of(rt, sold.sku)).voided == 2
    assert await count(rt, AuditEntry, AuditEntry.action == "agent_order.refunded") == 1
    async with rt.db.read() as session:
        assert (await ledger.check(session)).ok


async def test_without_the_order_lock_both_refunds_decide_on_a_delivered_order(rt: Runtime) -> None:
    """The control experiment for the test above: with `db.unprotected()` both refunds read the order as
    delivered; the second one then fails (on the codes that are no longer sold) instead of answering
    "refunded already". The race is certain: each refund, once it has read the order, waits for the other
    to have read it too before it writes anything (a rendezvous of the two right after `orders.locked`).
    PostgreSQL only: SQLite serializes writers on its one write lock (without BEGIN IMMEDIATE the second
    fails with "database is locked"), so there is no overlap to show there.
    """
    if not rt.db.is_postgresql:
        pytest.skip("SQLite serializes writers: there is no overlap to show")
    sold = await given_delivered_order(rt)

    with rt.db.unprotected(), each_reads_before_any_writes(orders_service, "locked", contenders=2):
        outcomes = await asyncio.gather(refund(rt, sold.agent), refund(rt, sold.agent), return_exceptions=True)

    assert [type(o) for o in outcomes if isinstance(o, BaseException)] == [IllegalTransition], outcomes
    assert await balance(rt, sold.agent) == DEPOSIT


# --- the admin API ----------------------------------------------------------------------------------


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details", "request_id"}, body
    code: str = body["error"]["code"]
    return code


async def test_the_admin_api_refunds_once_and_answers_the_order(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sold = await given_delivered_order(rt)
    url = f"{API}/agents/{sold.agent.id}/orders/A-1/refund"

    first = await client.post(url, json={"reason": REASON}, headers=admin_headers)
    again = await client.post(url, json={"reason": REASON}, headers=admin_headers)

    order = await order_of(rt, sold.agent)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "number": order.number,
        "out_order_no": "A-1",
        "status": "refunded",
        "quantity": 2,
        "total_minor": 2 * PRICE,
        "currency": "CNY",
        "refunded": True,
    }
    assert (again.status_code, again.json()["refunded"]) == (200, False)
    assert await balance(rt, sold.agent) == DEPOSIT


async def test_the_admin_api_refuses_with_the_one_error_shape_and_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sold = await given_delivered_order(rt)
    async with agent_client(rt, sold.agent) as kq:
        await kq.place_order("A-2", sold.sku.code, 1, mode="async")
    before = await world(rt, sold), await world(rt, sold, "A-2")

    async def post(agent_id: int, out_order_no: str, body: dict[str, Any]) -> httpx.Response:
        return await client.post(
            f"{API}/agents/{agent_id}/orders/{out_order_no}/refund", json=body, headers=admin_headers
        )

    agent_id, reason = sold.agent.id, {"reason": REASON}
    refused = {
        "unknown order": await post(agent_id, "A-404", reason),
        "unknown agent": await post(404, "A-1", reason),
        "processing": await post(agent_id, "A-2", reason),
        "empty reason": await post(agent_id, "A-1", {"reason": ""}),
        "no reason": await post(agent_id, "A-1", {}),
        "extra field": await post(agent_id, "A-1", {**reason, "amount_minor": 1}),
    }

    assert {name: (r.status_code, error_code(r)) for name, r in refused.items()} == {
        "unknown order": (404, "order_not_found"),
        "unknown agent": (404, "agent_not_found"),
        "processing": (409, "order_not_refundable"),
        "empty reason": (400, "bad_input"),
        "no reason": (422, "validation_error"),
        "extra field": (422, "validation_error"),
    }
    assert (await world(rt, sold), await world(rt, sold, "A-2")) == before


async def test_a_refund_needs_finance_write(rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor) -> None:
    sold = await given_delivered_order(rt)
    url = f"{API}/agents/{sold.agent.id}/orders/A-1/refund"
    roles = {role: await headers_for(role) for role in ("operator", "support", "auditor", "finance")}
    before = await world(rt, sold)

    for role in ("operator", "support", "auditor"):
        answer = await client.post(url, json={"reason": REASON}, headers=roles[role])
        assert (answer.status_code, error_code(answer)) == (403, "forbidden"), role
    assert await world(rt, sold) == before

    finance = await client.post(url, json={"reason": REASON}, headers=roles["finance"])
    assert (finance.status_code, finance.json()["refunded"]) == (200, True)
    async with rt.db.read() as session:
        entry = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "agent_order.refunded"))
        ).scalar_one()
    assert entry.actor.startswith("finance-")


# --- the command line -------------------------------------------------------------------------------


def given_cli_orders(kaquan: Kaquan) -> None:
    """Agent `acme` with a delivered order A-1 (2 × 800) and an async order A-2 still processing."""
    kaquan.ok("migrate")

    async def work() -> None:
        settings = Settings(database_url=kaquan.database_url, var_dir=kaquan.var_dir)
        rt = await runtime_module.start(settings)
        try:
            sku = await given_sku_with_codes(rt, 5)
            await given_price(rt, sku.code, PRICE)
            agent = await given_agent(rt, code="acme", deposit_minor=DEPOSIT)
            async with agent_client(rt, agent) as kq:
                await kq.place_order("A-1", sku.code, 2)
                await kq.place_order("A-2", sku.code, 1, mode="async")
        finally:
            await rt.close()

    in_own_loop(work)


def refused_with(kaquan: Kaquan, code: str, *args: str) -> None:
    said = kaquan.refused(*args)
    lines = said.strip().splitlines()
    assert len(lines) == 1 and f"({code})" in lines[0], said


def test_the_cli_refunds_an_agents_order_once_and_refuses_clearly(kaquan: Kaquan) -> None:
    given_cli_orders(kaquan)

    refused_with(kaquan, "order_not_found", *REFUND, "acme", "A-404", "--reason", REASON, "--yes")
    refused_with(kaquan, "agent_not_found", *REFUND, "nobody", "A-1", "--reason", REASON, "--yes")
    refused_with(kaquan, "order_not_refundable", *REFUND, "acme", "A-2", "--reason", REASON, "--yes")
    refused_with(kaquan, "bad_input", *REFUND, "acme", "A-1", "--reason", " ", "--yes")
    first = one_line(kaquan.ok(*REFUND, "acme", "A-1", "--reason", REASON, "--yes"))
    again = one_line(kaquan.ok(*REFUND, "acme", "A-1", "--reason", REASON, "--yes"))

    balance = f"acme: balance {display(DEPOSIT - PRICE, 'CNY')}"
    assert f"refunded: {display(2 * PRICE, 'CNY')} back" in first and balance in first
    assert "was refunded already; nothing moved" in again and balance in again
    [stock] = kaquan.stock()
    assert (stock.voided, stock.adds_up) == (2, True)

"""A marketplace store's settlement export and an agent's own statement, matched against their orders.

The store `tmall` (commission 5 %) sells through its order export; the agent
`acme` buys over the open API. Their statements are the formats kaquan reads
(docs/statements.md), written here as finance would download them.
"""

import hashlib
import io
import secrets
from datetime import date

import pytest
from tests.support.aftersale import ask
from tests.support.agents import agent_client, given_agent, given_price
from tests.support.builders import given_sku_with_codes
from tests.support.marketplace import account_balance, given_store_selling, import_file, order_file

from kaquan import accounting, ledger, reconciliation
from kaquan.kit import clock
from kaquan.payments import refunds
from kaquan.reconciliation.days import BEIJING
from kaquan.runtime import Runtime

STORE = "marketplace:tmall"
RECEIVABLE = "receivable:marketplace:tmall:CNY"
EXPORT_HEADER = "结算流水号,订单号,类型,金额（元）,佣金（元）,发生时间"


def today() -> date:
    return clock.now().astimezone(BEIJING).date()


def now_text() -> str:
    return clock.now().astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


async def store_orders(rt: Runtime, *ids_and_quantities: tuple[str, int]) -> dict[str, str]:
    """Orders of the store `tmall` at ¥10.00 a code, delivered from its order file: marketplace id → number."""
    sku = await given_store_selling(rt, [f"MKT-{secrets.token_hex(6)}" for _ in range(10)], price_minor=1000)
    rows = [f"{order_id},{sku.code},{quantity}" for order_id, quantity in ids_and_quantities]
    delivered = await import_file(rt, order_file(*rows))
    assert all(line.outcome == "placed" and line.order_no for line in delivered)
    return {line.line.request.marketplace_order_id: str(line.order_no) for line in delivered}


async def imported(rt: Runtime, source: str, text: str, encoding: str = "utf-8") -> reconciliation.ImportResult:
    data = text.encode(encoding)
    async with rt.db.transaction() as session:
        statement, expected = await reconciliation.open_source(session, source, io.BytesIO(data))
        return await reconciliation.import_statement(
            rt.db,
            session,
            statement,
            sha256=hashlib.sha256(data).hexdigest(),
            filename="export.csv",
            actor="finance",
            expected_account=expected,
        )


async def matched(rt: Runtime, source: str) -> dict[str, int]:
    async with rt.db.transaction() as session:
        summary = await reconciliation.match_period(rt.db, session, source=source, first_day=today(), last_day=today())
    return {name: n for name, n in summary.counts.items() if n}


async def items(rt: Runtime, source: str) -> dict[str, reconciliation.DifferenceView]:
    async with rt.db.read() as session:
        found = await reconciliation.list_differences(session, source=source, states=None, limit=1000)
    return {(item.line_identity or item.record_ref or "?"): item for item in found}


async def classes(rt: Runtime, source: str) -> dict[str, str]:
    """The class of every item and every matched pair, by line identity (or record, without a line)."""
    async with rt.db.read() as session:
        found: list[reconciliation.DifferenceView | reconciliation.MatchedView] = []
        found += await reconciliation.list_differences(session, source=source, states=None, limit=1000)
        found += await reconciliation.list_matched(session, source=source, limit=1000)
    return {(item.line_identity or item.record_ref or "?"): item.class_ for item in found}


async def books_problems(rt: Runtime) -> list[str]:
    async with rt.db.read() as session:
        paid, done = await refunds.books_records(session)
        return (await ledger.check(session)).problems + await accounting.check_books(session, paid, done)


def export(*rows: str) -> str:
    return "\n".join((EXPORT_HEADER, *rows)) + "\n"


async def test_a_store_export_matches_its_orders_commissions_refunds_and_its_payout_clears_the_receivable(
    rt: Runtime,
) -> None:
    orders = await store_orders(rt, ("TM-1", 1), ("TM-2", 2), ("TM-3", 1))
    await ask(rt, orders["TM-3"], may_approve=True)  # the marketplace refunded its buyer
    assert await account_balance(rt, RECEIVABLE) == 950 + 1900  # TM-3 sold and given back
    at = now_text()
    statement = export(
        f"S1,TM-1,订单收入,10.00,0.50,{at}",
        f"S2,TM-2,订单收入,20.00,,{at}",
        f"S3,TM-2,平台佣金,1.00,,{at}",  # the commission on its own line
        f"S4,TM-3,订单收入,10.00,0.50,{at}",
        f"S5,TM-3,退款,10.00,0.50,{at}",
        f"S6,TM-9,订单收入,5.00,0.25,{at}",  # an order kaquan never delivered
        f"P1,,结算打款,28.50,,{at}",  # 9.50 + 19.00 + 9.50 - 9.50: what the paired orders come to
    )

    stored = await imported(rt, STORE, statement)
    assert stored.lines_new == 7

    assert await matched(rt, STORE) == {"matched": 6, "missing_in_kaquan": 1}
    found = await items(rt, STORE)
    async with rt.db.transaction() as session:
        with pytest.raises(reconciliation.NothingToResolve):  # a matched commission line: nothing to do
            await reconciliation.resolve(rt.db, session, found["S3"].id, resolution="no_action", note="", actor="f")
    assert await classes(rt, STORE) == {
        "S1": "matched",
        "S2": "matched",
        "S3": "matched",
        "S4": "matched",
        "S5": "matched",
        "S6": "missing_in_kaquan",
        "P1": "matched",
    }
    assert (found["P1"].expected_minor, found["P1"].found_minor) == (2850, 2850)
    assert found["P1"].ledger_reference == "payout:marketplace:tmall:P1"
    assert await account_balance(rt, RECEIVABLE) == 0  # the payout cleared what the store owed
    assert await account_balance(rt, "bank:CNY") == 2850

    assert await matched(rt, STORE) == {"matched": 6, "missing_in_kaquan": 1}  # again: booked once
    assert await account_balance(rt, "bank:CNY") == 2850
    assert await books_problems(rt) == []


async def test_a_payout_short_of_the_orders_net_is_a_difference_and_accepting_it_books_what_came(rt: Runtime) -> None:
    await store_orders(rt, ("TM-1", 1), ("TM-2", 1))
    at = now_text()
    await imported(
        rt,
        STORE,
        export(f"S1,TM-1,订单收入,10.00,0.50,{at}", f"S2,TM-2,订单收入,10.00,0.50,{at}", f"P1,,结算打款,18.00,,{at}"),
    )

    assert await matched(rt, STORE) == {"matched": 2, "amount_mismatch": 1}
    payout = (await items(rt, STORE))["P1"]
    assert (payout.class_, payout.line_kind, payout.expected_minor, payout.found_minor) == (
        "amount_mismatch",
        "payout",
        1900,
        1800,
    )
    assert await account_balance(rt, RECEIVABLE) == 1900  # nothing cleared by a payout that does not add up

    async with rt.db.transaction() as session:
        done = await reconciliation.resolve(
            rt.db, session, payout.id, resolution="accept_statement", note="平台扣了1元推广费", actor="finance"
        )
    assert done.ledger_reference == "payout:marketplace:tmall:P1"
    assert await account_balance(rt, RECEIVABLE) == 100  # still owed by the store, in plain sight
    assert await account_balance(rt, "bank:CNY") == 1800
    async with rt.db.transaction() as session:
        again = await reconciliation.resolve(
            rt.db, session, payout.id, resolution="accept_statement", note="", actor="finance"
        )
    assert again.ledger_reference == done.ledger_reference  # resolving twice books once
    assert await account_balance(rt, "bank:CNY") == 1800
    assert await books_problems(rt) == []


async def test_money_moving_resolutions_other_than_a_payout_are_refused_on_a_store(rt: Runtime) -> None:
    await store_orders(rt, ("TM-1", 1))
    await imported(rt, STORE, export(f"S9,TM-9,订单收入,5.00,0.25,{now_text()}"))
    await matched(rt, STORE)
    stranger = (await items(rt, STORE))["S9"]

    async with rt.db.transaction() as session:
        try:
            await reconciliation.resolve(rt.db, session, stranger.id, resolution="write_off", note="", actor="finance")
            raise AssertionError("a write-off on a store was accepted")
        except reconciliation.ResolutionNotSupported as refused:
            assert refused.code == "reconciliation_resolution_not_supported"
    async with rt.db.transaction() as session:
        done = await reconciliation.resolve(
            rt.db, session, stranger.id, resolution="no_action", note="平台错单，已申诉", actor="finance"
        )
    assert done.state == "resolved" and done.ledger_reference is None


async def test_an_agents_statement_matches_its_orders_by_out_order_no(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 10)
    await given_price(rt, sku.code, 800)
    agent = await given_agent(rt, deposit_minor=100_000)
    async with agent_client(rt, agent) as kq:
        first = await kq.place_order("A-1", sku.code, 1)
        second = await kq.place_order("A-2", sku.code, 2)
        unseen = await kq.place_order("A-3", sku.code, 1)
    at = clock.now().astimezone(BEIJING).isoformat()
    statement = "\n".join(
        (
            "out_order_no,order_no,sku,quantity,amount,created_at,status",
            f"A-1,{first.order_no},{sku.code},1,8.00,{at},delivered",
            f"A-2,{second.order_no},{sku.code},2,15.00,{at},delivered",  # the agent thinks it paid less
            f"A-9,KQ-UNKNOWN,{sku.code},1,8.00,{at},delivered",
        )
    )

    await imported(rt, "agent:acme", statement)

    assert await matched(rt, "agent:acme") == {
        "matched": 1,
        "amount_mismatch": 1,
        "missing_in_kaquan": 1,
        "missing_in_statement": 1,
    }
    by_ref = {item.record_ref or item.line_merchant_ref: item for item in (await items(rt, "agent:acme")).values()}
    async with rt.db.read() as session:
        [pair] = await reconciliation.list_matched(session, source="agent:acme")
    assert pair.record_ref == "A-1"
    assert (by_ref["A-2"].class_, by_ref["A-2"].expected_minor, by_ref["A-2"].found_minor) == (
        "amount_mismatch",
        1600,
        1500,
    )
    assert by_ref["A-9"].class_ == "missing_in_kaquan"
    assert by_ref["A-3"].class_ == "missing_in_statement" and unseen.order_no
    assert await books_problems(rt) == []

"""The worker's daily bill job: yesterday's bill of each gateway, fetched once the provider publishes it,
imported and matched; a failed fetch is retried later, backing off, and stays visible until it succeeds."""

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from tests.support.reconciling import PUBLIC_URL, WechatShop, items_by_ref, wechat_shop

from kaquan import reconciliation
from kaquan.kit import clock
from kaquan.payments import registry
from kaquan.payments.plugins import GatewaySetup, load_plugins
from kaquan.reconciliation.bills import MAX_ATTEMPTS, wait_after
from kaquan.reconciliation.days import BEIJING
from kaquan.runtime import Runtime
from kaquan.worker import run_once


def travel_to(day: date, hour: int, minute: int = 0) -> None:
    """Move kaquan's clock (and the simulators', which read it) to hour:minute Beijing time on `day`."""
    target = datetime.combine(day, time(hour, minute), BEIJING).astimezone(UTC)
    clock.travel((target - clock.now()).total_seconds())


async def fetches(shop: WechatShop) -> list[reconciliation.BillFetchView]:
    async with shop.rt.db.read() as session:
        return await reconciliation.list_fetches(session)


async def of_day(shop: WechatShop, day: date) -> reconciliation.BillFetchView:
    return {fetch.day: fetch for fetch in await fetches(shop)}[day]


@pytest.fixture(params=["wechatpay", "alipay"])
async def shop(request: pytest.FixtureRequest, rt: Runtime, tmp_path: Path) -> AsyncIterator[WechatShop]:
    async with wechat_shop(rt, tmp_path, request.param) as shop:
        yield shop


async def test_yesterdays_bill_is_fetched_imported_and_matched_once_it_is_published(shop: WechatShop) -> None:
    travel_to(clock.now().astimezone(BEIJING).date(), 3)  # before any bill of the day is out, whenever this runs
    paid = await shop.paid(1990)
    refunded = await shop.refund(await shop.paid(4500), 1500)
    published = 10 if shop.simulation.gateway.name == "wechatpay" else 9

    travel_to(paid.day + timedelta(days=1), published - 1, 59)
    assert await reconciliation.fetch_due_bills(shop.rt.db) == 0
    assert await fetches(shop) == []

    travel_to(paid.day + timedelta(days=1), published, 1)
    await run_once(shop.rt)  # the worker's pass runs the job

    [done] = await fetches(shop)
    assert (done.gateway, done.day, done.state, done.attempts, done.last_error) == (
        shop.simulation.gateway.name,
        paid.day,
        "done",
        1,
        "",
    )
    assert done.lines_new == 3 and done.differences == 0 and done.statement_id is not None
    assert await items_by_ref(shop) == {
        paid.token: "matched",
        shop.sold[1].token: "matched",
        refunded.refund_no: "matched",
    }
    assert await reconciliation.fetch_due_bills(shop.rt.db) == 0  # done is done
    assert await shop.books_problems() == []


class Outage(httpx.AsyncBaseTransport):
    """The network between kaquan and the provider's simulator; while `down`, the bill download answers 503."""

    def __init__(self, app: Starlette) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.down = True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down and "bill" in request.url.path:
            return httpx.Response(503, json={"code": "SYSTEM_ERROR", "message": "系统繁忙，请稍后再试"})
        return await self.inner.handle_async_request(request)


async def test_a_failed_fetch_is_retried_later_backing_off_and_stays_visible_until_it_succeeds(
    rt: Runtime, tmp_path: Path
) -> None:
    async with wechat_shop(rt, tmp_path) as shop:
        paid = await shop.paid(1990)
        outage = Outage(Starlette(routes=[Mount(shop.simulation.mount_path, app=shop.simulation.provider.app)]))
        setup = GatewaySetup(
            settings=rt.settings, public_url=PUBLIC_URL, state_dir=tmp_path / "gateways", transport=outage
        )
        plugin = {p.name: p for p in load_plugins()}["wechatpay"]
        registry.configure([plugin.simulated(setup).gateway], public_url=PUBLIC_URL)  # same keys, same provider

        travel_to(paid.day + timedelta(days=1), 10, 1)
        assert await reconciliation.fetch_due_bills(rt.db) == 1
        [failed] = await fetches(shop)
        assert (failed.state, failed.attempts) == ("waiting", 1)
        assert failed.last_error.startswith("gateway_failed")
        assert await reconciliation.fetch_due_bills(rt.db) == 0  # not again at once
        assert await shop.items() == []  # nothing imported

        for attempt in range(2, MAX_ATTEMPTS + 1):
            clock.travel(wait_after(attempt - 1).total_seconds() + 1)
            await reconciliation.fetch_due_bills(rt.db)  # later days' bills join in as their days pass
            assert (await of_day(shop, paid.day)).attempts == attempt
        given_up = await of_day(shop, paid.day)
        assert given_up.state == "failed" and given_up.last_error.startswith("gateway_failed")
        clock.travel(timedelta(days=1).total_seconds())
        await reconciliation.fetch_due_bills(rt.db)
        assert (await of_day(shop, paid.day)).attempts == MAX_ATTEMPTS  # given up: only finance starts it again

        outage.down = False
        async with rt.db.transaction() as session:
            again = await reconciliation.retry_fetch(rt.db, session, given_up.id, actor="finance")
        assert (again.state, again.attempts) == ("waiting", 0)
        await reconciliation.fetch_due_bills(rt.db)
        done = await of_day(shop, paid.day)
        assert (done.state, done.lines_new, done.differences) == ("done", 1, 0)
        assert await items_by_ref(shop) == {paid.token: "matched"}


async def test_retrying_a_fetch_that_does_not_exist_is_not_found(rt: Runtime) -> None:
    with pytest.raises(reconciliation.FetchNotFound):
        async with rt.db.transaction() as session:
            await reconciliation.retry_fetch(rt.db, session, 404, actor="finance")


async def test_stripes_balance_transactions_of_yesterday_utc_are_fetched_and_matched(
    rt: Runtime, tmp_path: Path
) -> None:
    async with wechat_shop(rt, tmp_path, "stripe") as shop:
        paid = await shop.paid(1990)
        day = paid.at.astimezone(UTC).date()
        target = datetime.combine(day + timedelta(days=1), time(2, 1), UTC)
        clock.travel((target - clock.now()).total_seconds())

        assert await reconciliation.fetch_due_bills(rt.db) == 1

        done = await of_day(shop, day)
        assert (done.gateway, done.state, done.attempts, done.lines_new) == ("stripe", "done", 1, 1)
        assert await shop.items() == []
        [pair] = await shop.matched()
        # paired with its payment, and kaquan booked Stripe's whole fee: 2.9 % of 19.90 plus the fixed 0.30
        assert (pair.record_ref, pair.line_merchant_ref, pair.class_, pair.amount_minor) == (
            paid.token,
            paid.token,
            "matched",
            1990,
        )
        assert done.differences == 0
        assert await shop.books_problems() == []


async def test_a_worker_down_for_days_catches_up_every_missed_day_once_and_no_further_back_than_its_look_back(
    shop: WechatShop,
) -> None:
    first = await shop.paid(1990)
    day = first.day
    travel_to(day + timedelta(days=1), 11)
    assert await reconciliation.fetch_due_bills(shop.rt.db) == 1  # a gateway's first pass: yesterday only
    # The worker stops; sales go on for two more days.
    travel_to(day + timedelta(days=1), 12)
    second = await shop.paid(2990)
    travel_to(day + timedelta(days=2), 12)
    third = await shop.paid(3990)

    travel_to(day + timedelta(days=5), 11)  # back, four days later: days +1 … +4 are published
    assert await reconciliation.fetch_due_bills(shop.rt.db, limit=3) == 3  # oldest first, a few per pass
    assert await reconciliation.fetch_due_bills(shop.rt.db, limit=3) == 1
    assert await reconciliation.fetch_due_bills(shop.rt.db) == 0  # every day is in: nothing twice

    fetched = {fetch.day: fetch for fetch in await fetches(shop)}
    assert sorted(fetched) == [day + timedelta(days=n) for n in range(5)]
    assert {fetch.state for fetch in fetched.values()} == {"done"}
    assert fetched[day + timedelta(days=1)].lines_new == 1 and fetched[day + timedelta(days=2)].lines_new == 1
    assert await items_by_ref(shop) == {
        first.token: "matched",
        second.token: "matched",
        third.token: "matched",
    }

    travel_to(day + timedelta(days=30), 11)  # down for weeks: only the look-back is caught up
    assert await reconciliation.fetch_due_bills(shop.rt.db, limit=50, look_back_days=3) == 3
    assert sorted(fetch.day for fetch in await fetches(shop))[-3:] == [day + timedelta(days=n) for n in range(27, 30)]
    assert await shop.books_problems() == []

"""Flash-sale events: an allotment taken from central stock, held under the event, given back at the end.

The allotment is no new stock state: its codes are `reserved` under the event, so
available + reserved + sold + voided = imported holds at every step.
"""

from datetime import timedelta

import pytest
from sqlalchemy import select
from tests.support.builders import given_segment_sku, given_sku_with_codes, stock_of
from tests.support.flash import given_event, held_by_event

from kaquan.audit.models import AuditEntry
from kaquan.catalog.errors import SkuNotFound
from kaquan.flashsale import service
from kaquan.flashsale.errors import EventNotFound, InvalidEvent
from kaquan.flashsale.schemas import EventCreate
from kaquan.inventory.errors import OutOfStock
from kaquan.kit import clock
from kaquan.runtime import Runtime


async def test_an_event_starting_now_holds_its_allotment_out_of_central_stock(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 30)

    event_id = await given_event(rt, sku, stock=20)

    async with rt.db.read() as session:
        event = await service.get_event(session, event_id)
    assert (event.status, event.allotted, event.currency) == ("live", 20, "CNY")
    assert await held_by_event(rt, event_id) == 20
    stock = await stock_of(rt, sku)
    assert (stock.available, stock.reserved, stock.sold) == (10, 20, 0)
    assert stock.adds_up


async def test_a_scheduled_event_takes_nothing_until_its_start(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 30)
    event_id = await given_event(rt, sku, stock=20, starts_in_s=600)
    assert await held_by_event(rt, event_id) == 0
    assert (await stock_of(rt, sku)).available == 30

    assert await rt.flash.run_due() == 0
    clock.travel(601)
    assert await rt.flash.run_due() == 1

    assert await held_by_event(rt, event_id) == 20
    assert (await stock_of(rt, sku)).available == 10


async def test_an_event_started_late_takes_what_stock_is_left(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 30)
    event_id = await given_event(rt, sku, stock=20, starts_in_s=60)
    await given_event(rt, sku, stock=25)  # another event took most of the stock meanwhile
    clock.travel(61)

    await rt.flash.run_due()

    async with rt.db.read() as session:
        event = await service.get_event(session, event_id)
    assert (event.status, event.stock, event.allotted) == ("live", 20, 5)
    assert (await stock_of(rt, sku)).adds_up


async def test_the_end_returns_what_the_event_still_holds_to_central_stock(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 30)
    event_id = await given_event(rt, sku, stock=20, lasts_s=120)
    clock.travel(121)

    assert await rt.flash.run_due() == 1

    async with rt.db.read() as session:
        event = await service.get_event(session, event_id)
    assert (event.status, event.released) == ("ended", 20)
    assert await held_by_event(rt, event_id) == 0
    stock = await stock_of(rt, sku)
    assert (stock.available, stock.reserved) == (30, 0)


async def test_ending_by_hand_is_audited_and_ending_twice_changes_nothing(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=10)

    first = await rt.flash.end_event(event_id, actor="ops")
    second = await rt.flash.end_event(event_id, actor="ops")

    assert (first.status, first.released) == (second.status, second.released) == ("ended", 10)
    async with rt.db.read() as session:
        actions = [tuple(row) for row in await session.execute(select(AuditEntry.action, AuditEntry.actor))]
    assert actions.count(("flashsale.event_ended", "ops")) == 1
    assert ("flashsale.event_created", "test") in actions


async def test_a_scheduled_event_ended_before_its_start_never_takes_stock(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=10, starts_in_s=600)

    await rt.flash.end_event(event_id, actor="ops")
    clock.travel(601)
    await rt.flash.run_due()

    assert await held_by_event(rt, event_id) == 0
    assert (await stock_of(rt, sku)).available == 10


def _create(sku_code: str, **changes: object) -> EventCreate:
    now = clock.now()
    values: dict[str, object] = {
        "sku": sku_code,
        "starts_at": now,
        "ends_at": now + timedelta(hours=1),
        "stock": 5,
        "price_minor": 100,
    }
    return EventCreate.model_validate(values | changes)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"stock": 11}, OutOfStock),
        ({"ends_at": "2020-01-01T00:00:00+00:00", "starts_at": "2019-12-31T00:00:00+00:00"}, InvalidEvent),
        ({"sku": "NO-SUCH-SKU"}, SkuNotFound),
    ],
    ids=["more-than-in-stock", "already-over", "unknown-sku"],
)
async def test_a_bad_event_is_refused_and_changes_nothing(
    rt: Runtime, changes: dict[str, object], error: type[Exception]
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    before = await stock_of(rt, sku)

    with pytest.raises(error):
        async with rt.db.transaction() as session:
            await service.create_event(rt.db, session, _create(sku.code, **changes), actor="test")

    assert await stock_of(rt, sku) == before
    async with rt.db.read() as session:
        assert await service.list_events(session) == []


async def test_an_end_before_the_start_is_refused(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 10)
    now = clock.now()

    with pytest.raises(InvalidEvent, match="after starts_at"):
        async with rt.db.transaction() as session:
            data = _create(sku.code, starts_at=now + timedelta(hours=2), ends_at=now + timedelta(hours=1))
            await service.create_event(rt.db, session, data, actor="test")


async def test_segment_skus_are_refused(rt: Runtime) -> None:
    sku = await given_segment_sku(rt, start=1, end=100)

    with pytest.raises(InvalidEvent, match="unique-code"):
        async with rt.db.transaction() as session:
            await service.create_event(rt.db, session, _create(sku.code), actor="test")


async def test_an_unknown_event_is_not_found(rt: Runtime) -> None:
    async with rt.db.read() as session:
        with pytest.raises(EventNotFound):
            await service.get_event(session, 404)

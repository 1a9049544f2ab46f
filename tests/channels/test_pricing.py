"""Channels: their price lists per agent tier, their share of a SKU's stock, and their settings.

A channel sells a SKU only at a price on its own list; an agent tier's price beats the
channel's default. A quota holds a channel to a share of a SKU's stock, and concurrent
orders cannot take it past that share: the quota row is locked while an order decides.
"""

import asyncio
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from tests.support.agents import GivenAgent, given_agent, given_price
from tests.support.builders import GivenSku, buy, given_sku, given_sku_with_codes, stock_of
from tests.support.races import each_reads_before_any_writes

from kaquan.audit import service as audit
from kaquan.catalog import service as catalog
from kaquan.catalog.models import Sku
from kaquan.channels import pricing as channels
from kaquan.channels.agents import accounts as agents
from kaquan.channels.agents import ordering
from kaquan.channels.errors import SkuNotAvailableForAgent
from kaquan.channels.models import Channel
from kaquan.inventory.claims import handouts
from kaquan.inventory.delivery import Viewer
from kaquan.kit.errors import DomainError
from kaquan.orders import batch_placing
from kaquan.orders import service as orders_service
from kaquan.runtime import Runtime


async def listed(rt: Runtime, tier: str = "", channel: str = "api") -> dict[str, int]:
    async with rt.db.read() as session:
        found = await channels.get_channel(session, channel)
        return {p.sku.code: p.price_minor for p in await channels.price_list(session, found, tier)}


async def price_for(rt: Runtime, sku: str, tier: str = "") -> int:
    async with rt.db.read() as session:
        channel = await channels.get_channel(session, "api")
        return (await channels.price_for(session, channel, tier, sku)).price_minor


async def audit_actions(rt: Runtime) -> list[str]:
    async with rt.db.read() as session:
        return [entry.action for entry in reversed(await audit.recent(session, limit=1000))]


async def refused_code(rt: Runtime, change: Any) -> str:
    """Run `change(session)` in a transaction that must be refused; returns the error code."""
    with pytest.raises(DomainError) as refused:
        async with rt.db.transaction() as session:
            await change(session)
    return refused.value.code


# --- price lists --------------------------------------------------------------------------------


async def test_a_tier_price_beats_the_default_and_every_other_tier_pays_the_default(rt: Runtime) -> None:
    netflix, steam = await given_sku(rt, code="NETFLIX-1M"), await given_sku(rt, code="STEAM-100")
    await given_price(rt, netflix.code, 3500)
    await given_price(rt, netflix.code, 3200, tier="gold")
    await given_price(rt, steam.code, 9600)

    assert await listed(rt, "gold") == {"NETFLIX-1M": 3200, "STEAM-100": 9600}
    assert await listed(rt, "silver") == {"NETFLIX-1M": 3500, "STEAM-100": 9600}
    assert await listed(rt) == {"NETFLIX-1M": 3500, "STEAM-100": 9600}
    assert (await price_for(rt, "NETFLIX-1M", "gold"), await price_for(rt, "NETFLIX-1M", "silver")) == (3200, 3500)


async def test_a_price_for_one_tier_only_lists_the_sku_for_that_tier_alone(rt: Runtime) -> None:
    sku = await given_sku(rt, code="VIP-ONLY")
    await given_price(rt, sku.code, 100, tier="gold")

    assert await listed(rt, "gold") == {"VIP-ONLY": 100}
    assert await listed(rt, "silver") == {}
    with pytest.raises(SkuNotAvailableForAgent):
        await price_for(rt, "VIP-ONLY", "silver")


async def test_pricing_again_changes_the_price_and_the_audit_trail_shows_before_and_after(rt: Runtime) -> None:
    sku = await given_sku(rt, code="NETFLIX-1M")
    await given_price(rt, sku.code, 3500)
    await given_price(rt, sku.code, 3300)

    assert await listed(rt) == {"NETFLIX-1M": 3300}
    async with rt.db.read() as session:
        first, second = reversed(await audit.search(session, audit.AuditFilter(action="channel.price_set")))
    assert (first.target, first.before, first.after) == (
        "api/NETFLIX-1M/*",
        None,
        {"price_minor": 3500, "currency": "CNY"},
    )
    assert (second.before, second.after) == ({"price_minor": 3500}, {"price_minor": 3300, "currency": "CNY"})


async def test_removing_a_price_takes_the_sku_off_the_list_or_back_to_the_default(rt: Runtime) -> None:
    sku = await given_sku(rt, code="NETFLIX-1M")
    await given_price(rt, sku.code, 3500)
    await given_price(rt, sku.code, 3200, tier="gold")

    async with rt.db.transaction() as session:
        await channels.remove_price(rt.db, session, "api", sku.code, tier="gold", actor="ops")
    assert await listed(rt, "gold") == {"NETFLIX-1M": 3500}
    async with rt.db.transaction() as session:
        await channels.remove_price(rt.db, session, "api", sku.code, actor="ops")
    assert await listed(rt, "gold") == await listed(rt) == {}
    with pytest.raises(SkuNotAvailableForAgent):
        await price_for(rt, sku.code)

    async with rt.db.read() as session:
        removed = await audit.search(session, audit.AuditFilter(action="channel.price_removed"))
    assert [(e.actor, e.target, e.before) for e in reversed(removed)] == [
        ("ops", "api/NETFLIX-1M/gold", {"price_minor": 3200, "currency": "CNY"}),
        ("ops", "api/NETFLIX-1M/*", {"price_minor": 3500, "currency": "CNY"}),
    ]
    gone = await refused_code(rt, lambda s: channels.remove_price(rt.db, s, "api", sku.code, actor="ops"))
    assert gone == "price_not_found"


async def test_an_inactive_sku_is_neither_listed_nor_sold(rt: Runtime) -> None:
    on, off = await given_sku(rt, code="ON-1"), await given_sku(rt, code="OFF-1")
    await given_price(rt, on.code, 100)
    await given_price(rt, off.code, 100)
    async with rt.db.transaction() as session:
        sku = await session.get(Sku, off.id)
        assert sku is not None
        sku.active = False

    assert await listed(rt) == {"ON-1": 100}
    with pytest.raises(SkuNotAvailableForAgent):
        await price_for(rt, off.code)


async def test_a_sku_is_sold_by_its_code_never_by_its_id(rt: Runtime) -> None:
    sku = await given_sku(rt, code="NETFLIX-1M")
    await given_price(rt, sku.code, 3500)

    assert await price_for(rt, "NETFLIX-1M") == 3500
    with pytest.raises(SkuNotAvailableForAgent):
        await price_for(rt, str(sku.id))


async def test_a_switched_off_channel_sells_nothing_but_keeps_its_price_list(rt: Runtime) -> None:
    sku = await given_sku(rt, code="NETFLIX-1M")
    await given_price(rt, sku.code, 3500)
    async with rt.db.transaction() as session:
        await channels.configure(rt.db, session, "api", actor="ops", active=False)

    with pytest.raises(channels.ChannelInactive):
        await price_for(rt, sku.code)
    assert await listed(rt) == {"NETFLIX-1M": 3500}


@pytest.mark.parametrize(
    ("channel", "sku", "price", "tier", "code"),
    [
        ("api", "NETFLIX-1M", -1, "", "bad_input"),
        ("api", "NETFLIX-1M", 2**31, "", "bad_input"),
        ("api", "NETFLIX-1M", 100, "t" * 33, "bad_input"),
        ("api", "NO-SUCH-SKU", 100, "", "sku_not_found"),
        ("nowhere", "NETFLIX-1M", 100, "", "channel_not_found"),
        ("marketplace:bad store", "NETFLIX-1M", 100, "", "bad_input"),
    ],
    ids=["negative", "beyond-the-column", "tier-too-long", "unknown-sku", "unknown-channel", "bad-store-name"],
)
async def test_a_bad_price_is_refused_and_changes_nothing(
    rt: Runtime, channel: str, sku: str, price: int, tier: str, code: str
) -> None:
    await given_sku(rt, code="NETFLIX-1M")
    await given_price(rt, "NETFLIX-1M", 3500)
    before = (await listed(rt), await audit_actions(rt))

    assert (
        await refused_code(rt, lambda s: channels.set_price(rt.db, s, channel, sku, price, tier=tier, actor="t"))
        == code
    )

    assert (await listed(rt), await audit_actions(rt)) == before


async def test_operators_pricing_one_sku_at_once_all_succeed_and_one_price_stands(rt: Runtime) -> None:
    sku = await given_sku(rt, code="NETFLIX-1M")
    await given_price(rt, sku.code, 3500)  # the channel exists: nothing else makes the operators queue
    prices = [3000 + n for n in range(8)]

    async def set_price(price: int) -> None:
        async with rt.db.transaction() as session:
            await channels.set_price(rt.db, session, "api", sku.code, price, tier="gold", actor="ops")

    await asyncio.gather(*(set_price(price) for price in prices))

    assert (await listed(rt, "gold"))["NETFLIX-1M"] in prices
    assert (await audit_actions(rt)).count("channel.price_set") == 1 + len(prices)


# --- channel settings ---------------------------------------------------------------------------


async def channel_row(rt: Runtime, code: str) -> dict[str, object]:
    async with rt.db.read() as session:
        return channels.describe(await channels.get_channel(session, code))


async def test_configuring_a_channel_sets_its_fee_warehouse_order_and_name_and_is_audited(rt: Runtime) -> None:
    async with rt.db.transaction() as session:
        await channels.configure(
            rt.db, session, "wholesale", actor="ops", fee_rate_bp=250, warehouses=["main"], name="B2B 批发"
        )
        await channels.configure(rt.db, session, "wholesale", actor="ops", fee_rate_bp=10_000)
        await channels.configure(rt.db, session, "wholesale", actor="ops", fee_rate_bp=0)

    assert await channel_row(rt, "wholesale") == {
        "code": "wholesale",
        "kind": "wholesale",
        "name": "B2B 批发",
        "fee_rate_bp": 0,
        "warehouses": ["main"],
        "active": True,
    }
    async with rt.db.read() as session:
        first, *_ = reversed(await audit.search(session, audit.AuditFilter(action="channel.configured")))
    assert (first.actor, first.target) == ("ops", "wholesale")
    assert first.before is not None and first.after is not None
    assert (first.before["fee_rate_bp"], first.after["fee_rate_bp"]) == (0, 250)
    assert (first.before["warehouses"], first.after["warehouses"]) == ([], ["main"])


@pytest.mark.parametrize(
    ("code", "change", "error"),
    [
        ("api", {"fee_rate_bp": -1}, "bad_input"),
        ("api", {"fee_rate_bp": 10_001}, "bad_input"),
        ("api", {"warehouses": ["main", "atlantis"]}, "bad_input"),
        ("api", {"name": ""}, "bad_input"),
        ("api", {"name": "n" * 201}, "bad_input"),
        ("nowhere", {"fee_rate_bp": 100}, "channel_not_found"),
        ("marketplace:", {"fee_rate_bp": 100}, "bad_input"),
        ("marketplace:" + "s" * 60, {"fee_rate_bp": 100}, "bad_input"),
    ],
    ids=[
        "fee-negative",
        "fee-over-100%",
        "unknown-warehouse",
        "empty-name",
        "name-too-long",
        "unknown-channel",
        "store-missing",
        "code-too-long",
    ],
)
async def test_a_bad_channel_setting_is_refused_and_changes_nothing(
    rt: Runtime, code: str, change: dict[str, Any], error: str
) -> None:
    async with rt.db.transaction() as session:
        await channels.configure(rt.db, session, "api", actor="ops", fee_rate_bp=100)
    before = (await channel_row(rt, "api"), await audit_actions(rt))

    assert await refused_code(rt, lambda s: channels.configure(rt.db, s, code, actor="ops", **change)) == error

    assert (await channel_row(rt, "api"), await audit_actions(rt)) == before
    async with rt.db.read() as session:
        assert [c.code for c in await channels.list_channels(session)] == ["api"]


async def test_a_channel_takes_stock_from_its_warehouses_in_order(rt: Runtime) -> None:
    async with rt.db.transaction() as session:
        channel = await channels.configure(rt.db, session, "api", actor="ops", warehouses=["main"])
        assert await channels.warehouse_order(session, channel) == await handouts.warehouse_ids(session, ["main"])
        channel = await channels.configure(rt.db, session, "api", actor="ops", warehouses=[])
        assert await channels.warehouse_order(session, channel) is None


# --- quotas -------------------------------------------------------------------------------------


async def set_quota(rt: Runtime, sku: GivenSku, share_bp: int | None, channel: str = "api") -> None:
    async with rt.db.transaction() as session:
        await channels.set_quota(rt.db, session, channel, sku.code, share_bp, actor="ops")


async def order(
    rt: Runtime, agent: GivenAgent, sku: GivenSku, number: str, quantity: int, mode: ordering.Mode = "sync"
) -> str:
    """Place an agent order through the order desk; returns "ok" or the refusal's code."""
    async with rt.db.read() as session:
        found = await agents.get_agent(session, agent.id)
    try:
        await rt.agent_orders.place(
            found,
            ordering.AgentOrderRequest(number, sku.code, quantity, mode),
            Viewer(f"agent:{agent.code}", "test"),
        )
    except DomainError as refused:
        return refused.code
    return "ok"


async def api_units(rt: Runtime, sku: GivenSku) -> int:
    async with rt.db.read() as session:
        return await orders_service.units_taken(session, channel="api", sku_id=sku.id)


async def test_a_channel_held_to_half_a_skus_stock_is_out_of_stock_past_it(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 10)
    await given_price(rt, sku.code, 100)
    agent = await given_agent(rt)
    await set_quota(rt, sku, 5_000)

    assert (await buy(rt, sku, 3)).ok  # the shop's sales are not the API channel's share
    assert [await order(rt, agent, sku, f"A-{n}", q) for n, q in enumerate((3, 2, 1))] == ["ok", "ok", "out_of_stock"]
    assert (await api_units(rt, sku), (await stock_of(rt, sku)).available) == (5, 2)

    await set_quota(rt, sku, None)
    assert await order(rt, agent, sku, "A-9", 2) == "ok"


async def test_check_quota_names_the_room_left(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 8)
    await given_price(rt, sku.code, 100)
    await set_quota(rt, sku, 2_500)
    async with rt.db.transaction() as session:
        channel = await channels.get_channel(session, "api")
        found = await session.get(Sku, sku.id)
        assert found is not None
        assert await channels.quota_room(rt.db, session, channel, found) == 2
        await channels.check_quota(rt.db, session, channel, found, 2)
        with pytest.raises(channels.QuotaExceeded) as exceeded:
            await channels.check_quota(rt.db, session, channel, found, 3)
    assert (exceeded.value.status, exceeded.value.code) == (409, "out_of_stock")
    assert exceeded.value.details == {"sku": sku.code, "wanted": 3, "available": 2}


@pytest.mark.parametrize(
    ("share", "sku", "code"),
    [(-1, None, "bad_input"), (10_001, None, "bad_input"), (5_000, "NO-SUCH-SKU", "sku_not_found")],
    ids=["negative", "over-100%", "unknown-sku"],
)
async def test_a_bad_quota_is_refused_and_changes_nothing(rt: Runtime, share: int, sku: str | None, code: str) -> None:
    given = await given_sku_with_codes(rt, 4)
    await set_quota(rt, given, 5_000)
    before = await audit_actions(rt)

    refused = await refused_code(rt, lambda s: channels.set_quota(rt.db, s, "api", sku or given.code, share, actor="o"))

    assert refused == code
    assert await audit_actions(rt) == before
    async with rt.db.read() as session:
        channel = await channels.get_channel(session, "api")
        found = await session.get(Sku, given.id)
        assert found is not None
        assert await channels.quota_room(rt.db, session, channel, found) == 2


RACERS = 8
EACH = 2
STOCK = 20
SHARE_BP = 5_000  # 10 of the 20 codes: room for 5 of the 8 orders


async def _take_within_quota(rt: Runtime, sku: GivenSku, n: int) -> str:
    """What an order of the API channel does: check the quota, then place the order, in one transaction."""
    try:
        async with rt.db.transaction() as session:
            channel = await channels.get_channel(session, "api")
            found = await catalog.get_sku(session, sku.id)
            await channels.check_quota(rt.db, session, channel, found, EACH)
            await batch_placing.place_many(
                rt.db,
                session,
                found,
                [batch_placing.BulkOrder(f"Q-{n}", EACH, b"q")],
                channel="api",
                source=f"racer-{n}",
                unit_price_minor=100,
                currency="CNY",
                status="processing",
            )
    except DomainError as refused:
        return refused.code
    return "ok"


async def _given_a_sku_under_quota(rt: Runtime) -> GivenSku:
    sku = await given_sku_with_codes(rt, STOCK)
    await given_price(rt, sku.code, 100)
    await set_quota(rt, sku, SHARE_BP)
    return sku


async def _racers(rt: Runtime, sku: GivenSku) -> list[str]:
    """8 orders at once each ask for 2 units of a SKU whose API quota leaves room for 10.

    The orders are accepted for later filling, so they take no codes when placed and the quota is
    the only thing they race for.
    """
    return await asyncio.gather(*(_take_within_quota(rt, sku, n) for n in range(RACERS)))


async def _race_for_the_quota(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> tuple[GivenSku, list[str]]:
    """The racers, each dawdling after it read the channel's usage, so that unlocked reads would overlap."""
    sku = await _given_a_sku_under_quota(rt)
    read_taken = orders_service.units_taken

    async def dawdling(session: AsyncSession, *, channel: str, sku_id: int) -> int:
        taken = await read_taken(session, channel=channel, sku_id=sku_id)
        await asyncio.sleep(0.05)
        return taken

    monkeypatch.setattr(orders_service, "units_taken", dawdling)
    outcomes = await _racers(rt, sku)
    monkeypatch.undo()
    return sku, outcomes


async def test_concurrent_orders_cannot_take_a_channel_past_its_quota(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    sku, outcomes = await _race_for_the_quota(rt, monkeypatch)

    assert sorted(outcomes) == ["ok"] * 5 + ["out_of_stock"] * 3
    assert await api_units(rt, sku) == STOCK * SHARE_BP // 10_000


async def test_without_the_quota_row_lock_concurrent_orders_overshoot_the_quota(rt: Runtime) -> None:
    """The control experiment for the test above: with `db.unprotected()` every order reads the
    channel's usage before any other has committed, and together they take more than its share.

    The race is certain: each order, once it has read the usage, waits until all 8 have read it before
    it places anything (a rendezvous of the 8 right after `units_taken`). PostgreSQL only: SQLite
    serializes writers on its one write lock (without BEGIN IMMEDIATE the racers fail with "database is
    locked" instead), so there is no overshoot to show there.
    """
    if not rt.db.is_postgresql:
        pytest.skip("SQLite serializes writers: there is no overshoot to show")
    sku = await _given_a_sku_under_quota(rt)

    with rt.db.unprotected(), each_reads_before_any_writes(orders_service, "units_taken", contenders=RACERS):
        outcomes = await _racers(rt, sku)

    assert outcomes.count("ok") > 5
    assert await api_units(rt, sku) > STOCK * SHARE_BP // 10_000


async def test_the_built_in_channels_exist_on_first_use_and_are_listed(rt: Runtime) -> None:
    async with rt.db.transaction() as session:
        for code in ("shop", "wholesale", "api", "group_buy"):
            await channels.ensure_channel(rt.db, session, code, code)
        await channels.ensure_channel(rt.db, session, "marketplace:tmall-1", "marketplace", name="Tmall store")
        listed_channels: list[Channel] = await channels.list_channels(session)

    assert [(c.code, c.kind) for c in listed_channels] == [
        ("api", "api"),
        ("group_buy", "group_buy"),
        ("marketplace:tmall-1", "marketplace"),
        ("shop", "shop"),
        ("wholesale", "wholesale"),
    ]
    with pytest.raises(DomainError):
        async with rt.db.transaction() as session:
            await channels.ensure_channel(rt.db, session, "shop", "api")

"""Channels, their price lists and stock quotas.

Every order names its channel: the shop, wholesale, the open API, group buying,
or one marketplace store (`marketplace:<store>`). A channel sells a SKU only at
a price on its own list (per agent tier, falling back to the tier "" price),
may pay a fee (basis points of each order, booked on the ledger), takes stock
from warehouses in its own order, and may be held to a share of a SKU's stock
so that the rest stays for the other channels.
"""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import inventory
from kaquan.audit import service as audit
from kaquan.catalog import service as catalog
from kaquan.catalog.service import Sku
from kaquan.channels.errors import SkuNotAvailableForAgent
from kaquan.channels.models import CHANNEL_KINDS, ChannelPrice, ChannelQuota
from kaquan.channels.models import Channel as Channel
from kaquan.inventory import handouts
from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput, Conflict, Forbidden, NotFound
from kaquan.orders import service as orders

BUILT_IN = {"shop": "shop", "wholesale": "wholesale", "api": "api", "group_buy": "group_buy"}
MAX_CODE = 64
MAX_NAME = 200
MAX_TIER = 32
MAX_PRICE_MINOR = 2**31 - 1  # the price column is a 32-bit integer on PostgreSQL


class ChannelNotFound(NotFound):
    code = "channel_not_found"


class ChannelInactive(Forbidden):
    """The merchant has switched the channel off: it sells nothing until switched on again."""

    code = "channel_inactive"

    def __init__(self, channel: str) -> None:
        super().__init__(f"the {channel} channel is not selling now; ask the merchant", channel=channel)


class PriceNotFound(NotFound):
    code = "price_not_found"


class QuotaExceeded(Conflict):
    """The channel has used up the share of this SKU's stock it may take."""

    code = "out_of_stock"


def _check_code(code: str, kind: str) -> None:
    if kind not in CHANNEL_KINDS:
        raise BadInput(f"channel kind must be one of {', '.join(CHANNEL_KINDS)}", field="kind")
    if len(code) > MAX_CODE:
        raise BadInput(f"a channel code has at most {MAX_CODE} characters", field="code")
    if kind == "marketplace":
        store = code.removeprefix("marketplace:")
        if not code.startswith("marketplace:") or not store or not store.replace("_", "").replace("-", "").isalnum():
            raise BadInput("a marketplace channel is named marketplace:<store>", field="code")
    elif BUILT_IN.get(code) != kind:
        raise BadInput(f"channel {code!r} is not a {kind} channel", field="code")


async def ensure_channel(
    db: Database, session: AsyncSession, code: str, kind: str, *, name: str | None = None
) -> Channel:
    """The channel called `code`, created on first use (the built-in ones need no setup)."""
    _check_code(code, kind)
    await session.execute(
        db.insert(Channel.__table__)  # type: ignore[arg-type]
        .values(
            code=code, kind=kind, name=name or code, fee_rate_bp=0, warehouses=[], active=True, created_at=clock.now()
        )
        .on_conflict_do_nothing(index_elements=["code"])
    )
    return await get_channel(session, code)


async def get_channel(session: AsyncSession, code: str) -> Channel:
    found = (await session.execute(select(Channel).where(Channel.code == code))).scalar_one_or_none()
    if found is None:
        raise ChannelNotFound(f"no channel {code!r}", channel=code)
    return found


async def list_channels(session: AsyncSession) -> list[Channel]:
    return list((await session.execute(select(Channel).order_by(Channel.code))).scalars())


async def configure(
    db: Database,
    session: AsyncSession,
    code: str,
    *,
    actor: str,
    fee_rate_bp: int | None = None,
    warehouses: list[str] | None = None,
    active: bool | None = None,
    name: str | None = None,
) -> Channel:
    """Change a channel's fee, warehouse order, name or whether it sells at all (audited)."""
    if name is not None and not 1 <= len(name) <= MAX_NAME:
        raise BadInput(f"a channel name has 1-{MAX_NAME} characters", field="name")
    channel = await _channel_for(db, session, code)
    before = describe(channel)
    if fee_rate_bp is not None:
        if not 0 <= fee_rate_bp <= 10_000:
            raise BadInput("fee_rate_bp must be between 0 and 10000 (100%)", field="fee_rate_bp")
        channel.fee_rate_bp = fee_rate_bp
    if warehouses is not None:
        await handouts.warehouse_ids(session, warehouses)  # every code must name a warehouse
        channel.warehouses = list(warehouses)
    if active is not None:
        channel.active = active
    if name is not None:
        channel.name = name
    await audit.record(session, actor, "channel.configured", target=code, before=before, after=describe(channel))
    return channel


def describe(channel: Channel) -> dict[str, object]:
    return {
        "code": channel.code,
        "kind": channel.kind,
        "name": channel.name,
        "fee_rate_bp": channel.fee_rate_bp,
        "warehouses": list(channel.warehouses),
        "active": channel.active,
    }


async def warehouse_order(session: AsyncSession, channel: Channel) -> list[int] | None:
    """The warehouse ids this channel takes stock from, in order; None: every warehouse."""
    if not channel.warehouses:
        return None
    return await handouts.warehouse_ids(session, channel.warehouses)


async def set_price(
    db: Database,
    session: AsyncSession,
    channel_code: str,
    sku_ref: str | int,
    price_minor: int,
    *,
    tier: str = "",
    actor: str,
) -> ChannelPrice:
    """Put a SKU on a channel's price list (for one agent tier, or "" for everyone), or change its price."""
    if not 0 <= price_minor <= MAX_PRICE_MINOR:
        raise BadInput(f"a price is 0-{MAX_PRICE_MINOR} minor units", field="price_minor")
    if len(tier) > MAX_TIER:
        raise BadInput(f"a tier name has at most {MAX_TIER} characters", field="tier")
    channel = await _channel_for(db, session, channel_code)
    sku = await catalog.get_sku(session, sku_ref)
    existing = await _price_entry(session, channel, sku, tier)
    before = {"price_minor": existing.price_minor} if existing else None
    # Insert-or-keep, then update: two operators pricing the same SKU at once both succeed, the later one wins.
    await session.execute(
        db.insert(ChannelPrice.__table__)  # type: ignore[arg-type]
        .values(channel_id=channel.id, tier=tier, sku_id=sku.id, price_minor=price_minor, currency=sku.currency)
        .on_conflict_do_nothing(index_elements=["channel_id", "tier", "sku_id"])
    )
    entry = await _price_entry(session, channel, sku, tier)
    if entry is None:
        raise AssertionError(f"price {channel.code}/{sku.code}/{tier} neither inserted nor found")
    entry.price_minor, entry.currency = price_minor, sku.currency
    await session.flush()
    await audit.record(
        session,
        actor,
        "channel.price_set",
        target=f"{channel.code}/{sku.code}/{tier or '*'}",
        before=before,
        after={"price_minor": price_minor, "currency": sku.currency},
    )
    return entry


async def remove_price(
    db: Database, session: AsyncSession, channel_code: str, sku_ref: str | int, *, tier: str = "", actor: str
) -> None:
    """Take a SKU off a channel's price list for one tier ("" = the default price)."""
    channel = await get_channel(session, channel_code)
    sku = await catalog.get_sku(session, sku_ref)
    entry = await _price_entry(session, channel, sku, tier)
    if entry is None:
        raise PriceNotFound(f"{sku.code} is not on the {channel.code} price list", sku=sku.code, tier=tier)
    before = {"price_minor": entry.price_minor, "currency": entry.currency}
    await session.delete(entry)
    await session.flush()
    await audit.record(
        session, actor, "channel.price_removed", target=f"{channel.code}/{sku.code}/{tier or '*'}", before=before
    )


async def _price_entry(session: AsyncSession, channel: Channel, sku: Sku, tier: str) -> ChannelPrice | None:
    stmt = select(ChannelPrice).where(
        ChannelPrice.channel_id == channel.id, ChannelPrice.tier == tier, ChannelPrice.sku_id == sku.id
    )
    return (await session.execute(stmt.execution_options(populate_existing=True))).scalar_one_or_none()


async def _channel_for(db: Database, session: AsyncSession, code: str) -> Channel:
    kind = "marketplace" if code.startswith("marketplace:") else BUILT_IN.get(code)
    if kind is None:
        raise ChannelNotFound(f"no channel {code!r}", channel=code)
    return await ensure_channel(db, session, code, kind)


@dataclass(frozen=True)
class PricedSku:
    sku: Sku
    price_minor: int
    currency: str


async def price_list(session: AsyncSession, channel: Channel, tier: str) -> list[PricedSku]:
    """The SKUs this channel sells to `tier`, each at the tier's price or else the channel's default."""
    rows = await session.execute(
        select(ChannelPrice).where(ChannelPrice.channel_id == channel.id, ChannelPrice.tier.in_({"", tier}))
    )
    best: dict[int, ChannelPrice] = {}
    for entry in rows.scalars():
        if entry.sku_id not in best or entry.tier == tier:
            best[entry.sku_id] = entry
    priced = []
    for sku_id, entry in sorted(best.items()):
        sku = await catalog.get_sku(session, sku_id)
        if sku.active:
            priced.append(PricedSku(sku, entry.price_minor, entry.currency))
    return priced


@dataclass(frozen=True)
class PriceEntry:
    """One line of a channel's price list as the merchant keeps it: any tier, on sale or not."""

    sku: Sku
    tier: str
    price_minor: int
    currency: str


async def price_entries(session: AsyncSession, channel: Channel) -> list[PriceEntry]:
    """Every price on the channel's list, every tier, by SKU and tier (a SKU off sale included)."""
    rows = list((await session.execute(select(ChannelPrice).where(ChannelPrice.channel_id == channel.id))).scalars())
    skus = {sku.id: sku for sku in await catalog.list_skus(session)}
    entries = [PriceEntry(skus[e.sku_id], e.tier, e.price_minor, e.currency) for e in rows if e.sku_id in skus]
    return sorted(entries, key=lambda e: (e.sku.product_id, e.sku.id, e.tier))


async def quotas_of(session: AsyncSession, channel: Channel) -> dict[int, int]:
    """The channel's quotas: basis points of each limited SKU's stock, by SKU id."""
    rows = await session.execute(
        select(ChannelQuota.sku_id, ChannelQuota.max_share_bp).where(ChannelQuota.channel_id == channel.id)
    )
    return {sku_id: share for sku_id, share in rows}


async def price_for(session: AsyncSession, channel: Channel, tier: str, sku_ref: str) -> PricedSku:
    """This tier's price of a SKU in this channel; a SKU off the list, or a channel switched off, sells nothing.

    The SKU is named by its code only (an id is not a code: it would answer for whichever SKU has it).
    """
    if not channel.active:
        raise ChannelInactive(channel.code)
    try:
        sku = await catalog.get_sku(session, sku_ref)
    except NotFound:
        raise SkuNotAvailableForAgent(sku_ref) from None
    if sku.code != sku_ref:
        raise SkuNotAvailableForAgent(sku_ref)
    rows = await session.execute(
        select(ChannelPrice).where(
            ChannelPrice.channel_id == channel.id, ChannelPrice.sku_id == sku.id, ChannelPrice.tier.in_({"", tier})
        )
    )
    entries = {entry.tier: entry for entry in rows.scalars()}
    entry = entries.get(tier) or entries.get("")
    if entry is None or not sku.active:
        raise SkuNotAvailableForAgent(sku_ref)
    return PricedSku(sku, entry.price_minor, entry.currency)


async def set_quota(
    db: Database, session: AsyncSession, channel_code: str, sku_ref: str | int, max_share_bp: int | None, *, actor: str
) -> None:
    """Hold a channel to a share of a SKU's stock (basis points), or lift the limit with None."""
    if max_share_bp is not None and not 0 <= max_share_bp <= 10_000:
        raise BadInput("max_share_bp must be between 0 and 10000", field="max_share_bp")
    channel = await _channel_for(db, session, channel_code)
    sku = await catalog.get_sku(session, sku_ref)
    quota = await session.get(ChannelQuota, (channel.id, sku.id), populate_existing=True)
    before = {"max_share_bp": quota.max_share_bp} if quota else None
    if max_share_bp is None:
        if quota is not None:
            await session.delete(quota)
    else:
        await session.execute(
            db.insert(ChannelQuota.__table__)  # type: ignore[arg-type]
            .values(channel_id=channel.id, sku_id=sku.id, max_share_bp=max_share_bp)
            .on_conflict_do_nothing(index_elements=["channel_id", "sku_id"])
        )
        held = await session.get(ChannelQuota, (channel.id, sku.id), populate_existing=True)
        if held is None:
            raise AssertionError(f"quota {channel.code}/{sku.code} neither inserted nor found")
        held.max_share_bp = max_share_bp
    await session.flush()
    await audit.record(
        session,
        actor,
        "channel.quota_set",
        target=f"{channel.code}/{sku.code}",
        before=before,
        after={"max_share_bp": max_share_bp},
    )


async def quota_room(db: Database, session: AsyncSession, channel: Channel, sku: Sku) -> int | None:
    """How many more units this channel may take of the SKU under its quota; None: no quota.

    The quota row is locked for the rest of the transaction, so two orders of the
    channel cannot both take the last unit of its share.
    """
    stmt = db.lock(select(ChannelQuota).where(ChannelQuota.channel_id == channel.id, ChannelQuota.sku_id == sku.id))
    quota = (await session.execute(stmt)).scalar_one_or_none()
    if quota is None:
        return None
    rows = await inventory.stock(session, sku_id=sku.id)
    live = sum(row.imported - row.voided for row in rows)
    allowed = live * quota.max_share_bp // 10_000
    taken = await orders.units_taken(session, channel=channel.code, sku_id=sku.id)
    return max(allowed - taken, 0)


async def check_quota(db: Database, session: AsyncSession, channel: Channel, sku: Sku, quantity: int) -> None:
    room = await quota_room(db, session, channel, sku)
    if room is not None and quantity > room:
        raise QuotaExceeded(
            f"the {channel.code} channel may take {room} more unit(s) of {sku.code}",
            sku=sku.code,
            wanted=quantity,
            available=room,
        )

"""Channel price lists and quotas in the console: one page per channel, its prices by tier and its stock shares.

The same services as the admin API (`channels.pricing`): setting a price puts a built-in channel
on the books on first use, and every change is audited there.
"""

import re
from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.catalog import service as catalog
from kaquan.channels import Channel
from kaquan.channels import pricing as channels
from kaquan.kit.errors import BadInput
from kaquan.kit.money import display
from kaquan.kit.tables import Format, Table
from kaquan.web.console.access import ChannelsRead, ChannelsWrite
from kaquan.web.console.catalog import amount
from kaquan.web.console.rendering import console_router, page
from kaquan.web.deps import RuntimeDep
from kaquan.web.downloads import DOWNLOAD_RESPONSES, table_download
from kaquan.web.i18n import language, translator

router = console_router()

SkuRef = Annotated[str, Form(max_length=64)]
Tier = Annotated[str, Form(max_length=channels.MAX_TIER)]
_SHARE = re.compile(r"(\d{1,3})(?:\.(\d{1,2}))?")


def share_bp(text: str) -> int | None:
    """A share typed in percent (`30`, `12.5`) as basis points; empty lifts the limit."""
    cleaned = text.strip().rstrip("%").strip()
    if not cleaned:
        return None
    found = _SHARE.fullmatch(cleaned)
    bp = int(found.group(1)) * 100 + int((found.group(2) or "").ljust(2, "0")) if found else -1
    if not 0 <= bp <= 10_000:
        raise BadInput(f"a share is a percentage from 0 to 100, such as 30 or 12.5 (not {text!r})", field="share")
    return bp


async def _channel_or_none(session: AsyncSession, code: str) -> Channel | None:
    """The channel, or None for a built-in one no price has put on the books yet."""
    try:
        return await channels.get_channel(session, code)
    except channels.ChannelNotFound:
        if code in channels.BUILT_IN:
            return None
        raise


def _to_channel(code: str) -> Response:
    return RedirectResponse(f"/admin/channels/{code}", status_code=303)


@router.get("/admin/channels")
async def channel_list(request: Request, rt: RuntimeDep, admin: ChannelsRead) -> Response:
    async with rt.db.read() as session:
        known = {channel.code: channel for channel in await channels.list_channels(session)}
    codes = list(channels.BUILT_IN) + sorted(code for code in known if code not in channels.BUILT_IN)
    return page(request, admin, "channels.html", {"codes": codes, "known": known})


@router.get("/admin/channels/{code}")
async def channel_page(request: Request, rt: RuntimeDep, admin: ChannelsRead, code: str) -> Response:
    async with rt.db.read() as session:
        channel = await _channel_or_none(session, code)
        entries = await channels.price_entries(session, channel) if channel else []
        quotas = await channels.quotas_of(session, channel) if channel else {}
        skus = await catalog.list_skus(session)
    context = {"code": code, "channel": channel, "entries": entries, "quotas": quotas, "skus": skus}
    return page(request, admin, "channel.html", context)


@router.get("/admin/channels/{code}/prices/export", response_class=Response, responses=DOWNLOAD_RESPONSES)
async def export_prices(
    request: Request, rt: RuntimeDep, admin: ChannelsRead, code: str, format: Format = "csv"
) -> Response:
    t = translator(language(request))
    async with rt.db.read() as session:
        channel = await _channel_or_none(session, code)
        entries = await channels.price_entries(session, channel) if channel else []
        quotas = await channels.quotas_of(session, channel) if channel else {}
    header = [
        t("field.code"),
        t("cat.sku.name"),
        t("cat.channel.tier"),
        t("cat.channel.price"),
        t("cat.channel.quota"),
        t("cat.sale.sku"),
    ]
    rows = [
        [
            entry.sku.code,
            entry.sku.name,
            entry.tier or t("cat.channel.tier_default"),
            display(entry.price_minor, entry.currency),
            f"{quotas[entry.sku.id] / 100:g}%" if entry.sku.id in quotas else t("cat.channel.no_quota"),
            t("cat.sale.on") if entry.sku.active else t("cat.sale.off"),
        ]
        for entry in entries
    ]
    title = t("cat.channel.prices_of", channel=code)
    return table_download(Table(title, header, rows), format, f"prices-{code.replace(':', '-')}")


@router.post("/admin/channels/{code}/prices")
async def set_price(
    rt: RuntimeDep,
    admin: ChannelsWrite,
    code: str,
    sku: SkuRef,
    price: Annotated[str, Form(max_length=32)],
    tier: Tier = "",
) -> Response:
    """The price is typed in the SKU's currency (`19.90`)."""
    async with rt.db.transaction() as session:
        target = await catalog.get_sku(session, sku)
        price_minor = amount(price, target.currency, "price")
        await channels.set_price(rt.db, session, code, target.id, price_minor, tier=tier.strip(), actor=admin.actor)
    return _to_channel(code)


@router.post("/admin/channels/{code}/prices/remove")
async def remove_price(rt: RuntimeDep, admin: ChannelsWrite, code: str, sku: SkuRef, tier: Tier = "") -> Response:
    async with rt.db.transaction() as session:
        await channels.remove_price(rt.db, session, code, sku, tier=tier, actor=admin.actor)
    return _to_channel(code)


@router.post("/admin/channels/{code}/quotas")
async def set_quota(
    rt: RuntimeDep, admin: ChannelsWrite, code: str, sku: SkuRef, share: Annotated[str, Form(max_length=16)] = ""
) -> Response:
    """A share of the SKU's stock in percent; empty lifts the limit."""
    bp = share_bp(share)
    async with rt.db.transaction() as session:
        await channels.set_quota(rt.db, session, code, sku, bp, actor=admin.actor)
    return _to_channel(code)

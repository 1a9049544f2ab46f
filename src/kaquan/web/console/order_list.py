"""The console's order list: recent orders without a search, filters, paging, and the list as CSV or XLSX.

The filters travel in the query string, so a filtered page (and its download links) can be
bookmarked and shared. A value no order can have (an unknown status or SKU, a date that is not
one, a range that ends before it starts) is a 4xx page, never an empty list that looks like
"no orders".
"""

from dataclasses import asdict, dataclass
from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.catalog import service as catalog
from kaquan.catalog.service import Sku
from kaquan.kit.bounds import BigRowId
from kaquan.kit.errors import BadInput
from kaquan.kit.money import display
from kaquan.kit.tables import Table
from kaquan.orders import listing
from kaquan.orders.service import ORDER_STATUSES, Order
from kaquan.web.console.access import OrdersRead
from kaquan.web.console.exports import DOWNLOADS, local, stem, word, wording
from kaquan.web.console.rendering import console_router, page
from kaquan.web.deps import RuntimeDep
from kaquan.web.downloads import table_download
from kaquan.web.i18n import Translate, language, translator
from kaquan.web.pages import local_time

router = console_router()


@dataclass(frozen=True)
class ListQuery:
    """The list's filters as the form sends them: text, empty when not chosen."""

    status: str = ""
    channel: str = ""
    sku: str = ""
    contact: str = ""
    q: str = ""
    date_from: str = ""
    date_to: str = ""

    def chosen(self) -> dict[str, str]:
        """The filters in use, for links that keep them (the next page, the downloads)."""
        return {name: value for name, value in asdict(self).items() if value}


def list_query(
    status: Annotated[str, Query(max_length=24)] = "",
    channel: Annotated[str, Query(max_length=32)] = "",
    sku: Annotated[str, Query(max_length=64)] = "",
    contact: Annotated[str, Query(max_length=200)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    date_from: Annotated[str, Query(max_length=10)] = "",
    date_to: Annotated[str, Query(max_length=10)] = "",
) -> ListQuery:
    return ListQuery(*(value.strip() for value in (status, channel, sku, contact, q, date_from, date_to)))


Filters = Annotated[ListQuery, Depends(list_query)]


def _day(text: str, field: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{field}: {text!r} is not a date (YYYY-MM-DD)", field=field) from None


async def _order_filter(session: AsyncSession, query: ListQuery, zone: ZoneInfo) -> listing.OrderFilter:
    """The service's filter: the SKU by its code (unknown: 404), the shop's days as UTC times."""
    sku_id = (await catalog.get_sku(session, query.sku)).id if query.sku else None
    created_from, created_before = listing.local_days(
        _day(query.date_from, "date_from"), _day(query.date_to, "date_to"), zone
    )
    return listing.OrderFilter(
        status=query.status or None,
        channel=query.channel or None,
        sku_id=sku_id,
        contact=query.contact or None,
        query=query.q or None,
        created_from=created_from,
        created_before=created_before,
    )


@router.get("/admin/orders")
async def order_list(
    request: Request,
    rt: RuntimeDep,
    admin: OrdersRead,
    query: Filters,
    before_id: BigRowId | None = None,
    per_page: Annotated[int, Query(ge=1, le=listing.MAX_PAGE_SIZE)] = listing.PAGE_SIZE,
) -> Response:
    zone = rt.settings.zone()
    async with rt.db.read(stale_ok=True) as session:
        where = await _order_filter(session, query, zone)
        found = await listing.recent(session, where, before_id=before_id, limit=per_page)
        skus = {sku.id: sku for sku in await catalog.list_skus(session)}
        channels = await listing.channels_in_use(session)
    chosen = query.chosen() | ({"per_page": str(per_page)} if per_page != listing.PAGE_SIZE else {})
    full = len(found) == per_page
    context: dict[str, Any] = {
        "filters": query,
        "orders": found,
        "skus": skus,
        "sku_codes": sorted(sku.code for sku in skus.values()),
        "statuses": ORDER_STATUSES,
        "channels": channels,
        "next_page": urlencode({**chosen, "before_id": found[-1].id}) if full else None,
        "first_page": urlencode(chosen) if before_id is not None else None,
        "export_query": urlencode(query.chosen()),
        "export_limit": listing.EXPORT_LIMIT,
        "zone": rt.settings.timezone,
        "when": local_time(request),
        "word": wording(request),
    }
    return page(request, admin, "orders.html", context)


def order_table(t: Translate, orders: list[Order], skus: dict[int, Sku], zone_name: str) -> Table:
    """The orders as finance reads them: statuses and channels in words, money as money, times in the shop's zone."""
    zone = ZoneInfo(zone_name)
    header = [
        t("orders.number"),
        t("field.status"),
        t("orders.channel"),
        t("orders.sku"),
        t("orders.product"),
        t("orders.quantity"),
        t("orders.unit_price"),
        t("orders.total"),
        t("orders.currency"),
        t("orders.contact"),
        t("orders.created_in", zone=zone_name),
        t("orders.paid_in", zone=zone_name),
        t("orders.delivered_in", zone=zone_name),
    ]
    rows = [
        [
            o.number,
            word(t, "order.status", o.status),
            word(t, "channel", o.channel),
            skus[o.sku_id].code if o.sku_id in skus else str(o.sku_id),
            skus[o.sku_id].name if o.sku_id in skus else "",
            o.quantity,
            display(o.unit_price_minor, o.currency),
            display(o.total_minor, o.currency),
            o.currency,
            o.contact,
            local(o.created_at, zone),
            local(o.paid_at, zone),
            local(o.delivered_at, zone),
        ]
        for o in orders
    ]
    return Table(t("export.orders"), header, rows)


@router.get("/admin/orders.{fmt}", responses=DOWNLOADS)
async def order_export(
    request: Request, rt: RuntimeDep, admin: OrdersRead, fmt: Literal["csv", "xlsx"], query: Filters
) -> Response:
    """The newest `listing.EXPORT_LIMIT` orders matching the filters (the list page says so)."""
    async with rt.db.read(stale_ok=True) as session:
        where = await _order_filter(session, query, rt.settings.zone())
        found = [order async for order in listing.for_export(session, where)]
        skus = {sku.id: sku for sku in await catalog.list_skus(session)}
    table = order_table(translator(language(request)), found, skus, rt.settings.timezone)
    return table_download(table, fmt, stem("orders", rt.settings.zone()))

"""The console's home: today's stock levels and sales per SKU; "today" is the shop's day, in its zone."""

from datetime import datetime, time, timedelta

from fastapi import Request
from fastapi.responses import Response

from kaquan.catalog import service as catalog
from kaquan.inventory import per_sku, stock
from kaquan.kit import clock
from kaquan.orders import service as orders
from kaquan.web.console.access import StockRead
from kaquan.web.console.rendering import HOME, console_router, page
from kaquan.web.deps import RuntimeDep

router = console_router()


@router.get(HOME)
async def dashboard(request: Request, rt: RuntimeDep, admin: StockRead) -> Response:
    zone = rt.settings.zone()
    today = clock.now().astimezone(zone).date()
    start, end = datetime.combine(today, time(), zone), datetime.combine(today + timedelta(days=1), time(), zone)
    async with rt.db.read(stale_ok=True) as session:
        skus = {sku.id: sku for sku in await catalog.list_skus(session)}
        levels = per_sku(await stock(session))
        sales = await orders.delivered_between(session, start, end)
    context = {"skus": skus, "levels": levels, "sales": sales, "day": today.isoformat(), "zone": rt.settings.timezone}
    return page(request, admin, "dashboard.html", context)

"""Finding orders, an order's page, and revealing its codes (with a reason, audited)."""

from typing import Annotated

from fastapi import Form, Query, Request
from fastapi.responses import Response

from kaquan.catalog import service as catalog
from kaquan.inventory import custody
from kaquan.orders import service as orders
from kaquan.web.console.access import CodesReveal, OrdersRead
from kaquan.web.console.refunds import aftersale_view
from kaquan.web.console.rendering import console_router, page
from kaquan.web.deps import Principal, RuntimeDep

router = console_router()


@router.get("/admin/orders")
async def order_search(
    request: Request, rt: RuntimeDep, admin: OrdersRead, q: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    async with rt.db.read() as session:
        found = await orders.search(session, q)
        skus = {sku.id: sku for sku in await catalog.list_skus(session)} if found else {}
    return page(request, admin, "orders.html", {"q": q, "orders": found, "skus": skus})


async def _order_page(
    request: Request,
    rt: RuntimeDep,
    admin: Principal,
    number: str,
    revealed: custody.Revealed | None = None,
    *,
    resent: bool = False,
) -> Response:
    async with rt.db.read() as session:
        order = await orders.by_number(session, number)
        sku = await catalog.get_sku(session, order.sku_id)
        codes = await custody.masked_codes(session, rt.vault, order.id)
        events = await orders.events_of(session, order.id)
        after_sale = await aftersale_view(session, order)
    context = {
        "order": order,
        "sku": sku,
        "codes": codes,
        "events": events,
        "revealed": revealed,
        "resent": resent,
        **after_sale,
    }
    return page(request, admin, "order.html", context)


@router.get("/admin/orders/{number}")
async def order_detail(
    request: Request, rt: RuntimeDep, admin: OrdersRead, number: str, resent: Annotated[bool, Query()] = False
) -> Response:
    return await _order_page(request, rt, admin, number, resent=resent)


@router.post("/admin/orders/{number}/reveal")
async def reveal_codes(
    request: Request,
    rt: RuntimeDep,
    admin: CodesReveal,
    number: str,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    custody.checked_reason(reason)
    async with rt.db.transaction() as session:
        order = await orders.by_number(session, number)
        revealed = await custody.reveal(
            session, rt.vault, order.id, order_number=order.number, actor=admin.actor, reason=reason, ip=admin.ip
        )
    return await _order_page(request, rt, admin, number, revealed)

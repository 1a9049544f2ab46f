"""An order's page and what staff do there: reveal its codes (with a reason), cancel it while unpaid, write a note.

Every action is audited and needs its own permission, checked here whatever the page showed:
the page only hides the buttons an admin cannot use. (The list is `order_list`, after sale `refunds`.)
"""

from functools import partial
from typing import Annotated, Literal

from fastapi import Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from kaquan.catalog import service as catalog
from kaquan.inventory import custody
from kaquan.orders import service as orders
from kaquan.orders import staff
from kaquan.web.console.access import CodesReveal, OrdersRead
from kaquan.web.console.exports import wording
from kaquan.web.console.refunds import OrdersSupport, aftersale_view
from kaquan.web.console.rendering import console_router, page
from kaquan.web.deps import Principal, RuntimeDep
from kaquan.web.i18n import language, translator
from kaquan.web.i18n_identifiers import status_note
from kaquan.web.pages import local_time

router = console_router()


async def _order_page(
    request: Request,
    rt: RuntimeDep,
    admin: Principal,
    number: str,
    revealed: custody.Revealed | None = None,
    *,
    done: str = "",
) -> Response:
    async with rt.db.read() as session:
        order = await orders.by_number(session, number)
        sku = await catalog.get_sku(session, order.sku_id)
        codes = await custody.masked_codes(session, rt.vault, order.id)
        after_sale = await aftersale_view(session, order)
        timeline = await staff.timeline(session, order.id)
    context = {
        "order": order,
        "sku": sku,
        "codes": codes,
        "timeline": timeline,
        "revealed": revealed,
        "done": done,
        "zone": rt.settings.timezone,
        "when": local_time(request),
        "word": wording(request),
        "status_note": partial(status_note, translator(language(request))),
        **after_sale,
    }
    return page(request, admin, "order.html", context)


@router.get("/admin/orders/{number}")
async def order_detail(
    request: Request,
    rt: RuntimeDep,
    admin: OrdersRead,
    number: str,
    resent: Annotated[bool, Query()] = False,
    done: Annotated[Literal["", "cancelled", "noted"], Query()] = "",
) -> Response:
    """`resent` (the resend's own redirect) and `done` say what the action just taken did."""
    return await _order_page(request, rt, admin, number, done="resent" if resent else done)


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


def _done(number: str, what: str) -> RedirectResponse:
    return RedirectResponse(f"/admin/orders/{number}?done={what}", status_code=303)


@router.post("/admin/orders/{number}/cancel")
async def cancel_order(
    rt: RuntimeDep, admin: OrdersSupport, number: str, reason: Annotated[str, Form(max_length=2000)] = ""
) -> Response:
    async with rt.db.transaction() as session:
        await staff.cancel_unpaid(rt.db, session, number, actor=admin.actor, reason=reason, ip=admin.ip)
    return _done(number, "cancelled")


@router.post("/admin/orders/{number}/notes")
async def add_note(
    rt: RuntimeDep, admin: OrdersSupport, number: str, note: Annotated[str, Form(max_length=4000)] = ""
) -> Response:
    async with rt.db.transaction() as session:
        await staff.add_note(session, number, note, actor=admin.actor, ip=admin.ip)
    return _done(number, "noted")

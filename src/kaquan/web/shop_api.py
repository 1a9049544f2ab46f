"""The shop's JSON API: the same sale path as the pages, for scripts and apps."""

from typing import Annotated

from fastapi import APIRouter, Header, Request

from kaquan.orders import service as orders
from kaquan.payments import service as payments
from kaquan.web.content import JSON_ONLY
from kaquan.web.deps import RuntimeDep, buyer, client_ip, throttle_lookup
from kaquan.web.schemas import LookupRequest, OrderCreate, OrderOut

router = APIRouter(prefix="/api", tags=["shop"], dependencies=JSON_ONLY)


@router.post("/orders", status_code=201)
async def create_order(
    request: Request,
    rt: RuntimeDep,
    body: OrderCreate,
    idempotency_key: Annotated[str, Header(min_length=1, max_length=128)],
) -> OrderOut:
    order_request = orders.OrderRequest(
        sku=body.sku,
        quantity=body.quantity,
        idempotency_key=idempotency_key,
        contact=body.contact,
        buyer_ip=client_ip(request),
    )
    async with rt.db.transaction() as session:
        placed = await orders.place(
            rt.db,
            session,
            rt.order_keys,
            order_request,
            max_per_order=rt.settings.max_per_order,
            hold_minutes=rt.settings.hold_minutes,
        )
        payment = (
            await payments.latest_for_order(session, placed.order.id)
            if placed.replayed
            else await payments.start(session, rt.dev_gateway, placed.order)
        )
    pay_url = rt.dev_gateway.checkout_url(payment.token) if payment else None
    return OrderOut.of(placed.order, lookup_secret=placed.lookup_secret, pay_url=pay_url)


@router.post("/orders/lookup")
async def lookup_order(request: Request, rt: RuntimeDep, body: LookupRequest) -> OrderOut:
    await throttle_lookup(request, rt)
    async with rt.db.transaction() as session:
        order = await orders.lookup(session, rt.order_keys, body.number.strip(), body.secret)
        view = await orders.view(session, rt.vault, order, buyer(request, "order lookup API"))
    return OrderOut.of(order, view=view)

"""The shop's JSON API: the same sale path as the pages, for scripts and apps.

Every order is first screened by risk control (`web.risk_gate`): 403 `risk_declined`, or 403
`challenge_required` with a proof-of-work challenge to solve and send back in `X-Risk-Solution`.

An order placed with a buyer token (`Authorization: Bearer kqb1…` or the `kq_buyer` cookie) records the
verified contact: it is the order's contact, the one the per-contact holds count, and the order is listed
in that buyer's history (`GET /api/buyer/orders`).
"""

from typing import Annotated

from fastapi import APIRouter, Header, Request

from kaquan.orders import service as orders
from kaquan.payments import service as payments
from kaquan.web.buyers_api import signed_in
from kaquan.web.content import JSON_ONLY
from kaquan.web.deps import RuntimeDep, buyer, client_ip, lookup_guard, throttle_orders
from kaquan.web.i18n import language
from kaquan.web.risk_gate import page_ms, screen_shop_order
from kaquan.web.schemas import LookupRequest, OrderCreate, OrderOut

router = APIRouter(prefix="/api", tags=["shop"], dependencies=JSON_ONLY)


@router.post("/orders", status_code=201)
async def create_order(
    request: Request,
    rt: RuntimeDep,
    body: OrderCreate,
    idempotency_key: Annotated[str, Header(min_length=1, max_length=128)],
    x_client_token: Annotated[
        str,
        Header(
            min_length=orders.CLIENT_TOKEN_MIN,
            max_length=orders.CLIENT_TOKEN_MAX,
            description="a random value the client keeps (e.g. 32 random bytes, base64url); its idempotency keys "
            "are its own: a retry with the same key and token gets the same order, anyone else's request does not",
        ),
    ],
    x_risk_solution: Annotated[
        str | None, Header(max_length=300, description="a solved challenge (after 403 challenge_required)")
    ] = None,
    x_page_ms: Annotated[str | None, Header(max_length=12, description="ms from page load to submit")] = None,
) -> OrderOut:
    await throttle_orders(request, rt)
    order_request = orders.OrderRequest(
        sku=body.sku,
        quantity=body.quantity,
        idempotency_key=idempotency_key,
        client_token=x_client_token,
        contact=body.contact,
        buyer_ip=client_ip(request),
        buyer_contact=signed_in(request, rt),
        lang=language(request),
    )
    decision = await screen_shop_order(
        request, rt, order_request, device_new=False, solution=x_risk_solution, submit_ms=page_ms(x_page_ms)
    )
    async with rt.db.transaction() as session:
        sale = await payments.checkout(
            rt.db, session, rt.order_keys, rt.gateway, order_request, rt.settings, decision=decision
        )
    pay_url = payments.checkout_url(sale.payment)
    return OrderOut.of(sale.order, lookup_secret=sale.lookup_secret, pay_url=pay_url)


@router.post("/orders/lookup")
async def lookup_order(request: Request, rt: RuntimeDep, body: LookupRequest) -> OrderOut:
    number = body.number.strip()
    await lookup_guard(rt).verify(number, body.secret, client=client_ip(request))
    async with rt.db.transaction() as session:
        order = await orders.by_number(session, number)
        view = await orders.view(session, rt.vault, order, buyer(request, "order lookup API"), with_events=False)
    return OrderOut.of(order, view=view)

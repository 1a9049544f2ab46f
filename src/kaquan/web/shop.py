"""Storefront pages: browse, buy, pay, see the codes, look an order up (查单)."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kaquan.catalog import service as catalog
from kaquan.inventory.stock import available_by_sku
from kaquan.kit.bounds import Int64
from kaquan.orders import service as orders
from kaquan.orders.errors import OrderNotFound
from kaquan.payments import service as payments
from kaquan.web.deps import RuntimeDep, buyer, client_ip, throttle_lookup
from kaquan.web.pages import render

router = APIRouter()
ORDER_COOKIE_PREFIX = "kqo_"


def remember_order(response: Response, request: Request, number: str, lookup_secret: str) -> None:
    """Let this browser see the order again without retyping its lookup secret."""
    response.set_cookie(
        ORDER_COOKIE_PREFIX + number,
        lookup_secret,
        max_age=7 * 24 * 3600,
        path=f"/orders/{number}",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https" or request.app.state.runtime.settings.public_url.startswith("https"),
    )


@router.get("/", response_class=HTMLResponse)
async def index(request: Request, rt: RuntimeDep) -> Response:
    async with rt.db.read() as session:
        products = {p.id: p for p in await catalog.list_products(session)}
        skus = await catalog.list_skus(session, active_only=True)
        available = await available_by_sku(session)
    return render(
        request,
        "index.html",
        {
            "products": products,
            "skus": skus,
            "available": available,
            "idempotency_key": str(uuid.uuid4()),
        },
    )


@router.post("/orders")
async def buy(
    request: Request,
    rt: RuntimeDep,
    sku: Annotated[str, Form()],
    quantity: Annotated[Int64, Form()],
    idempotency_key: Annotated[str, Form()],
    contact: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    order_request = orders.OrderRequest(
        sku=sku,
        quantity=quantity,
        idempotency_key=idempotency_key,
        contact=contact,
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
        if not placed.replayed:
            await payments.start(session, rt.dev_gateway, placed.order)
    response = RedirectResponse(f"/orders/{placed.order.number}", status_code=303)
    remember_order(response, request, placed.order.number, placed.lookup_secret)
    return response


@router.get("/orders/{number}", response_class=HTMLResponse)
async def order_page(request: Request, rt: RuntimeDep, number: str) -> Response:
    offered = request.cookies.get(ORDER_COOKIE_PREFIX + number)
    if not offered or not rt.order_keys.check(number, offered):
        if offered:
            await throttle_lookup(request, rt)
        return RedirectResponse(f"/lookup?number={number}", status_code=303)
    async with rt.db.transaction() as session:
        order = await orders.lookup(session, rt.order_keys, number, offered)
        view = await orders.view(session, rt.vault, order, buyer(request, "order page"))
        payment = await payments.latest_for_order(session, order.id)
    return render(
        request,
        "order.html",
        {
            "view": view,
            "order": order,
            "lookup_secret": offered,
            "pay_url": rt.dev_gateway.checkout_url(payment.token)
            if payment and order.status == "pending_payment"
            else None,
        },
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


@router.post("/orders/{number}/cancel")
async def cancel(request: Request, rt: RuntimeDep, number: str) -> Response:
    offered = request.cookies.get(ORDER_COOKIE_PREFIX + number, "")
    async with rt.db.transaction() as session:
        order = await orders.lookup(session, rt.order_keys, number, offered)
        await orders.cancel(rt.db, session, order.id)
    return RedirectResponse(f"/orders/{number}", status_code=303)


@router.get("/lookup", response_class=HTMLResponse)
async def lookup_form(request: Request, number: str = "") -> Response:
    return render(request, "lookup.html", {"number": number, "failed": False})


@router.post("/lookup")
async def lookup(
    request: Request,
    rt: RuntimeDep,
    number: Annotated[str, Form(max_length=32)],
    secret: Annotated[str, Form(max_length=64)],
) -> Response:
    await throttle_lookup(request, rt)
    number = number.strip()
    try:
        async with rt.db.read() as session:
            await orders.lookup(session, rt.order_keys, number, secret)
    except OrderNotFound:
        return render(request, "lookup.html", {"number": number, "failed": True}, status=404)
    response = RedirectResponse(f"/orders/{number}", status_code=303)
    remember_order(response, request, number, rt.order_keys.lookup_secret(number))
    return response

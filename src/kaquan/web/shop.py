"""Storefront orders: buy, see the codes, look an order up (查单); browsing is in `shop_catalog`."""

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kaquan.catalog import service as catalog
from kaquan.kit.bounds import Int64
from kaquan.orders import service as orders
from kaquan.orders.errors import OrderNotFound
from kaquan.payments import service as payments
from kaquan.risk import ChallengeRequired, reviews
from kaquan.risk.captcha import MAX_ANSWER, MAX_TOKEN
from kaquan.web import risk_gate
from kaquan.web.account import owner_secret
from kaquan.web.buyers_api import signed_in
from kaquan.web.captcha import captcha_page, wants_captcha
from kaquan.web.deps import RuntimeDep, buyer, client_ip, lookup_guard, throttle_orders
from kaquan.web.i18n import language
from kaquan.web.pages import render
from kaquan.web.risk_gate import CLIENT_COOKIE, screen_shop_order
from kaquan.web.security import secure_cookie

router = APIRouter()
ORDER_COOKIE_PREFIX = "kqo_"
CLIENT_COOKIE_DAYS = 365


def client_token(request: Request) -> tuple[str, bool]:
    """This browser's client token (its idempotency scope and device identity), and whether it is new.

    A browser without a usable one gets a fresh random token; `remember_client` stores it.
    """
    token = request.cookies.get(CLIENT_COOKIE, "")
    if orders.CLIENT_TOKEN_MIN <= len(token) <= orders.CLIENT_TOKEN_MAX:
        return token, False
    return secrets.token_urlsafe(32), True


def remember_client(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        CLIENT_COOKIE,
        token,
        max_age=CLIENT_COOKIE_DAYS * 24 * 3600,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookie(request),
    )


def remember_order(response: Response, request: Request, number: str, lookup_secret: str) -> None:
    """Let this browser see the order again without retyping its lookup secret."""
    response.set_cookie(
        ORDER_COOKIE_PREFIX + number,
        lookup_secret,
        max_age=7 * 24 * 3600,
        path=f"/orders/{number}",
        httponly=True,
        samesite="lax",
        secure=secure_cookie(request),
    )


@router.post("/orders", status_code=303, response_class=RedirectResponse)
async def buy(
    request: Request,
    rt: RuntimeDep,
    sku: Annotated[str, Form()],
    quantity: Annotated[Int64, Form()],
    idempotency_key: Annotated[str, Form()],
    contact: Annotated[str, Form(max_length=200)] = "",
    risk_solution: Annotated[str, Form(max_length=300)] = "",
    page_ms: Annotated[str, Form(max_length=12)] = "",
    captcha_token: Annotated[str, Form(max_length=MAX_TOKEN)] = "",
    captcha_answer: Annotated[str, Form(max_length=MAX_ANSWER)] = "",
) -> Response:
    await throttle_orders(request, rt)
    token, new = client_token(request)
    order_request = orders.OrderRequest(
        sku=sku,
        quantity=quantity,
        idempotency_key=idempotency_key,
        client_token=token,
        contact=contact,
        buyer_ip=client_ip(request),
        buyer_contact=signed_in(request, rt),
        lang=language(request),
    )
    if captcha_token:  # a person's answer to the captcha page below
        risk_solution = f"{captcha_token}:{captcha_answer}"
    try:
        decision = await screen_shop_order(
            request, rt, order_request, device_new=new, solution=risk_solution, submit_ms=risk_gate.page_ms(page_ms)
        )
    except ChallengeRequired as refusal:
        if not wants_captcha(request, refusal):
            raise
        form = {"sku": sku, "quantity": str(quantity), "idempotency_key": idempotency_key, "contact": contact}
        return captcha_page(request, rt, refusal, action="shop.order", fields=form)
    async with rt.db.transaction() as session:
        sale = await payments.checkout(
            rt.db, session, rt.order_keys, rt.gateway, order_request, rt.settings, decision=decision
        )
    response = RedirectResponse(f"/orders/{sale.order.number}", status_code=303)
    remember_order(response, request, sale.order.number, sale.lookup_secret)
    if new:
        remember_client(response, request, token)
    return response


@router.get("/orders/{number}", response_class=HTMLResponse)
async def order_page(request: Request, rt: RuntimeDep, number: str) -> Response:
    offered = request.cookies.get(ORDER_COOKIE_PREFIX + number) or await owner_secret(request, rt, number)
    if not offered:
        return RedirectResponse(f"/lookup?number={number}", status_code=303)
    try:
        await lookup_guard(rt).verify(number, offered, client=client_ip(request))
    except OrderNotFound:
        return RedirectResponse(f"/lookup?number={number}", status_code=303)
    async with rt.db.transaction() as session:
        order = await orders.by_number(session, number)
        view = await orders.view(session, rt.vault, order, buyer(request, "order page"))
        payment = await payments.latest_for_order(session, order.id)
        held = order.status == "paid" and await reviews.status_of(session, order.id) == "open"
        sku = await catalog.get_sku(session, order.sku_id)
        product = await catalog.get_product(session, sku.product_id)
    return render(
        request,
        "order.html",
        {
            "view": view,
            "order": order,
            "sku": sku,
            "product": product,
            "lookup_secret": offered,
            "pay_url": payments.checkout_url(payment) if payment and order.status == "pending_payment" else None,
            "held": held,
        },
        headers={"Cache-Control": "no-store"},
    )


@router.post("/orders/{number}/cancel", status_code=303, response_class=RedirectResponse)
async def cancel(request: Request, rt: RuntimeDep, number: str) -> Response:
    offered = request.cookies.get(ORDER_COOKIE_PREFIX + number, "")
    await lookup_guard(rt).verify(number, offered, client=client_ip(request))
    async with rt.db.transaction() as session:
        order = await orders.by_number(session, number)
        await orders.cancel(rt.db, session, order.id)
    return RedirectResponse(f"/orders/{number}", status_code=303)


@router.get("/lookup", response_class=HTMLResponse)
async def lookup_form(request: Request, number: str = "") -> Response:
    return render(request, "lookup.html", {"number": number, "failed": False})


@router.post("/lookup", status_code=303, response_class=RedirectResponse)
async def lookup(
    request: Request,
    rt: RuntimeDep,
    number: Annotated[str, Form(max_length=32)],
    secret: Annotated[str, Form(max_length=64)],
) -> Response:
    number = number.strip()
    try:
        await lookup_guard(rt).verify(number, secret, client=client_ip(request))
        async with rt.db.read() as session:
            await orders.by_number(session, number)
    except OrderNotFound:
        return render(request, "lookup.html", {"number": number, "failed": True}, status=404)
    response = RedirectResponse(f"/orders/{number}", status_code=303)
    remember_order(response, request, number, rt.order_keys.lookup_secret(number))
    return response

"""The dev gateway's own pay page, and the notification endpoint every gateway posts to."""

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from kaquan.kit.errors import Conflict
from kaquan.orders import service as orders
from kaquan.payments import registry
from kaquan.payments import service as payments
from kaquan.web.deps import RuntimeDep
from kaquan.web.pages import render

router = APIRouter()


@router.post("/payments/{gateway}/notify")
async def notify(request: Request, rt: RuntimeDep, gateway: str) -> Response:
    body = await request.body()
    receipt = await payments.receive_notification(rt.db, registry.get(gateway), dict(request.headers), body)
    return JSONResponse({"ok": True, "outcome": receipt.outcome})


@router.get("/pay/dev/{token}", response_class=HTMLResponse)
async def pay_page(request: Request, rt: RuntimeDep, token: str) -> Response:
    async with rt.db.read() as session:
        payment = await payments.by_token(session, token)
        order = await orders.by_id(session, payment.order_id)
    return render(request, "pay_dev.html", {"payment": payment, "order": order})


@router.post("/pay/dev/{token}")
async def pay(request: Request, rt: RuntimeDep, token: str) -> Response:
    """The buyer pressed 'pay': the dev gateway notifies kaquan exactly as a real gateway would."""
    async with rt.db.read() as session:
        payment = await payments.by_token(session, token)
        order = await orders.by_id(session, payment.order_id)
    if payment.status != "pending":
        raise Conflict("this payment is already settled", payment_status=payment.status)
    headers, body = rt.dev_gateway.notification(
        payment.token, payment.amount_minor, payment.currency, txn_id=f"dev-{secrets.token_hex(8)}"
    )
    await payments.receive_notification(rt.db, rt.dev_gateway, headers, body)
    return RedirectResponse(f"/orders/{order.number}", status_code=303)

"""The dev gateway's own pay page: the buyer presses "pay" and the dev gateway notifies kaquan.

The pay page marks an order paid for whoever holds its link, so it answers only
when the dev gateway is enabled (`KAQUAN_DEV_GATEWAY=1`): 404 `dev_gateway_disabled`
otherwise, before the token is even looked at.
"""

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit.errors import Conflict
from kaquan.orders import service as orders
from kaquan.orders.service import Order
from kaquan.payments import notifications
from kaquan.payments import service as payments
from kaquan.payments.dev import DevGateway
from kaquan.payments.errors import PaymentNotFound
from kaquan.payments.service import Payment
from kaquan.web.deps import RuntimeDep
from kaquan.web.pages import render

router = APIRouter()


async def dev_gateway(rt: RuntimeDep) -> DevGateway:
    return rt.dev_gateway


DevGatewayDep = Annotated[DevGateway, Depends(dev_gateway)]


async def _dev_payment(session: AsyncSession, gateway: DevGateway, token: str) -> tuple[Payment, Order]:
    payment = await payments.by_token(session, token)
    if payment.gateway != gateway.name:
        raise PaymentNotFound("no such payment")
    return payment, await orders.by_id(session, payment.order_id)


@router.get("/pay/dev/{token}", response_class=HTMLResponse)
async def pay_page(request: Request, rt: RuntimeDep, gateway: DevGatewayDep, token: str) -> Response:
    async with rt.db.read() as session:
        payment, order = await _dev_payment(session, gateway, token)
    return render(request, "pay_dev.html", {"payment": payment, "order": order})


@router.post("/pay/dev/{token}", status_code=303, response_class=RedirectResponse)
async def pay(request: Request, rt: RuntimeDep, gateway: DevGatewayDep, token: str) -> Response:
    """The buyer pressed 'pay': the dev gateway notifies kaquan exactly as a real gateway would."""
    async with rt.db.read() as session:
        payment, order = await _dev_payment(session, gateway, token)
    if payment.status != "pending":
        raise Conflict("this payment is already settled", payment_status=payment.status)
    headers, body = gateway.notification(
        payment.token, payment.amount_minor, payment.currency, txn_id=f"dev-{secrets.token_hex(8)}"
    )
    await notifications.receive(rt.db, gateway, headers, body)
    return RedirectResponse(f"/orders/{order.number}", status_code=303)

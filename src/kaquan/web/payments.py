"""Paying: kaquan's pay page (choose a method, see the QR code or go to the provider), and provider notifications.

`/pay/{token}` belongs to whoever holds the payment's token (the shop gives it
only to the buyer who placed the order); it shows the order's amount and every
method this shop takes, and once the buyer chose, the provider's QR code as
inline SVG (no external service) or a link to the provider's page.
`/payments/{gateway}/notify` is where every provider posts; it answers each in
the form that provider expects (Alipay wants the bare word "success").
"""

import io
from typing import Annotated

import segno
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from pydantic import BaseModel, ConfigDict, Field

from kaquan.kit.errors import DomainError
from kaquan.orders import service as orders
from kaquan.payments import notifications, registry
from kaquan.payments import service as payments
from kaquan.payments.dev import DevGateway
from kaquan.payments.gateway import PayAction
from kaquan.web.content import JSON_ONLY
from kaquan.web.deps import RuntimeDep
from kaquan.web.pages import render
from kaquan.web.schemas import PaymentNotifyOut
from kaquan.web.security import client_ip

router = APIRouter()


@router.post("/payments/{gateway}/notify", response_model=PaymentNotifyOut)
async def notify(request: Request, rt: RuntimeDep, gateway: str) -> Response:
    """A provider's notification about a payment or a refund, verified by that provider's rules."""
    provider = registry.get(gateway)
    body = await request.body()
    try:
        receipt = await notifications.receive(rt.db, provider, dict(request.headers), body)
    except DomainError as exc:
        if isinstance(provider, DevGateway):
            raise  # kaquan's own gateway speaks kaquan's error format
        refused = provider.acknowledge(exc.code)
        return Response(refused.body, refused.status_code, media_type=refused.media_type)
    if isinstance(provider, DevGateway):
        return Response(
            PaymentNotifyOut(ok=True, outcome=receipt.outcome).model_dump_json(), media_type="application/json"
        )
    accepted = provider.acknowledge(None)
    return Response(accepted.body, accepted.status_code, media_type=accepted.media_type)


class MethodOut(BaseModel):
    key: str = Field(description='"<gateway>:<method>", e.g. "alipay:qr"')
    gateway: str
    method: str


class MethodChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str = Field(min_length=3, max_length=50, description='one of the offered keys, e.g. "wechatpay:native"')
    payer_id: str | None = Field(
        default=None, min_length=1, max_length=128, description="WeChat JSAPI only: the buyer's openid for the appid"
    )


class PayActionOut(BaseModel):
    """What the buyer does next: open `url` (redirect), scan `qr` (its SVG in `qr_svg`), or post `fields` to `url`."""

    kind: str
    url: str | None
    qr: str | None
    qr_svg: str | None
    fields: dict[str, str]


class PaymentChosenOut(BaseModel):
    payment: str = Field(description="the payment token to pay (a new one when the method changed)")
    order: str
    amount_minor: int
    currency: str
    method: str
    action: PayActionOut


def qr_svg(text: str) -> str:
    """A QR code as inline SVG markup, drawn here (no image service sees the payment link)."""
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", scale=5, border=2, xmldecl=False, svgns=True, title="QR")
    return out.getvalue().decode()


def _action_out(action: PayAction) -> PayActionOut:
    return PayActionOut(
        kind=action.kind,
        url=action.url,
        qr=action.qr,
        qr_svg=qr_svg(action.qr) if action.qr else None,
        fields=dict(action.fields),
    )


@router.get("/api/payments/methods")
async def methods() -> list[MethodOut]:
    """Every way to pay this shop takes, in the order it offers them."""
    return [MethodOut(key=o.key, gateway=o.gateway, method=o.method) for o in payments.offered_methods()]


@router.post("/api/payments/{token}/method", dependencies=JSON_ONLY)
async def choose_method(request: Request, rt: RuntimeDep, token: str, body: MethodChoice) -> PaymentChosenOut:
    """Open the provider's trade for this payment by the chosen method (again: the same trade)."""
    payer = payments.Payer(client_ip=client_ip(request), payer_id=body.payer_id)
    chosen = await payments.choose(rt.db, token, body.method, public_url=rt.settings.public_url, payer=payer)
    return PaymentChosenOut(
        payment=chosen.payment.token,
        order=chosen.order.number,
        amount_minor=chosen.payment.amount_minor,
        currency=chosen.payment.currency,
        method=f"{chosen.payment.gateway}:{chosen.payment.method}",
        action=_action_out(chosen.action),
    )


@router.get("/pay/{token}", response_class=HTMLResponse)
async def pay_page(request: Request, rt: RuntimeDep, token: str) -> Response:
    async with rt.db.read() as session:
        payment = await payments.by_token(session, token)
        order = await orders.by_id(session, payment.order_id)
    if payment.status == "succeeded":  # paid on the phone while this page was showing the QR code
        return RedirectResponse(f"/orders/{order.number}", status_code=303)
    action = PayAction(**payment.action) if payment.action else None
    return render(
        request,
        "pay.html",
        {
            "payment": payment,
            "order": order,
            "methods": payments.offered_methods(),
            "action": action,
            "qr": Markup(qr_svg(action.qr)) if action and action.qr else None,  # noqa: S704 - segno's own SVG
        },
    )


@router.post("/pay/{token}", status_code=303, response_class=RedirectResponse)
async def pay(request: Request, rt: RuntimeDep, token: str, method: Annotated[str, Form(max_length=50)]) -> Response:
    """The buyer chose a method on the pay page: to the provider's page, or back here to scan its QR code."""
    chosen = await payments.choose(
        rt.db, token, method, public_url=rt.settings.public_url, payer=payments.Payer(client_ip=client_ip(request))
    )
    if chosen.action.kind == "redirect" and chosen.action.url:
        return RedirectResponse(chosen.action.url, status_code=303)
    return RedirectResponse(f"/pay/{chosen.payment.token}", status_code=303)

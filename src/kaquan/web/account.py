"""Buyer accounts on the shop's pages: sign in by a one-time code (no password), order history, sign out.

An account is nothing stored: it is a contact (e-mail, or phone where SMS is
configured) proven by a code, and the signed buyer token in the `kq_buyer`
cookie (buyers_api.py). Orders placed while signed in record that contact, and
the history lists exactly those. The answer to "send me a code" is the same
whether or not the contact ever ordered (it is throttled per contact and per
address in `buyers.service`), so the form tells nobody who buys here.

The forms carry a double-submit token: a random value in an HttpOnly,
SameSite=Strict cookie and in the form. A cross-site form can send neither, so
nobody can sign a visitor in as someone else (whose history, and whose future
orders' codes, they would then share).
"""

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kaquan.buyers import service as verification
from kaquan.buyers.errors import CodeExpired, CodeWrong, InvalidContact, NoContactChannel, TooManyAttempts
from kaquan.catalog import service as catalog
from kaquan.kit.bounds import INT64_MAX
from kaquan.kit.errors import DomainError, RateLimited
from kaquan.kit.money import display
from kaquan.orders import service as orders
from kaquan.orders.errors import OrderNotFound
from kaquan.runtime import Runtime
from kaquan.web.buyers_api import clear_buyer_cookie, set_buyer_cookie, signed_in
from kaquan.web.deps import RuntimeDep, client_ip
from kaquan.web.i18n import Translate, translator
from kaquan.web.pages import local_time, render
from kaquan.web.risk_gate import SIGN_IN_FAILURES, sign_in_context
from kaquan.web.security import form_token_matches, new_form_token, set_form_token
from kaquan.web.shop_words import chosen_language

router = APIRouter(prefix="/account")
FORM_COOKIE = "kq_form"
FORM_FIELD = "form_token"


def _form_token(request: Request) -> str:
    token = request.cookies.get(FORM_COOKIE, "")
    return token if len(token) == 43 else new_form_token()


def _form_ok(request: Request, offered: str) -> bool:
    return form_token_matches(request, offered, cookie=FORM_COOKIE)


def _page(request: Request, rt: Runtime, name: str, context: dict[str, Any], *, status: int = 200) -> Response:
    t = translator(chosen_language(request)[0])
    token = _form_token(request)
    phone = bool(rt.settings.sms_webhook_url)
    page = render(
        request,
        name,
        {
            "t": t,
            "form_token": token,
            "phone": phone,
            "available": verification.any_channel(rt.settings),
            **context,
        },
        status=status,
        headers={"Cache-Control": "no-store"},
    )
    set_form_token(page, request, token, cookie=FORM_COOKIE, path="/account")
    return page


def _problem(t: Translate, error: DomainError) -> str:
    """The buyer's words for a refusal: the error's code looked up, with its details filled in."""
    values: dict[str, object] = {"seconds": error.details.get("retry_after", 60), **error.details}
    return t(f"account.error.{error.code}", **values)


@router.get("", response_class=HTMLResponse)
async def account(request: Request, rt: RuntimeDep) -> Response:
    target = "/account/orders" if signed_in(request, rt) else "/account/sign-in"
    return RedirectResponse(target, status_code=303)


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_form(request: Request, rt: RuntimeDep) -> Response:
    if signed_in(request, rt):
        return RedirectResponse("/account/orders", status_code=303)
    return _page(request, rt, "account_sign_in.html", {"step": "contact", "contact": "", "problem": None})


@router.post("/sign-in", response_class=HTMLResponse)
async def send_code(
    request: Request,
    rt: RuntimeDep,
    contact: Annotated[str, Form(max_length=254)],
    form_token: Annotated[str, Form(max_length=64)] = "",
    risk_solution: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    t = translator(chosen_language(request)[0])
    context: dict[str, Any] = {"step": "contact", "contact": contact, "problem": None}
    if not _form_ok(request, form_token):
        return _page(
            request, rt, "account_sign_in.html", {**context, "problem": t("account.error.form_expired")}, status=403
        )
    decision = await rt.risk.decide(sign_in_context(request, contact=contact, solution=risk_solution))
    if decision.outcome == "decline":
        return _page(
            request, rt, "account_sign_in.html", {**context, "problem": t("account.error.risk_declined")}, status=403
        )
    if decision.challenge is not None:  # the page solves it (/static/risk.js) and sends the form again, once
        challenged = {**context, "challenge": decision.challenge, "problem": t("account.error.challenge_required")}
        return _page(request, rt, "account_sign_in.html", challenged, status=403)
    try:
        async with rt.db.transaction() as session:
            started = await rt.buyers.start(rt.db, session, contact, ip=client_ip(request))
    except (InvalidContact, NoContactChannel, RateLimited) as exc:
        return _page(request, rt, "account_sign_in.html", {**context, "problem": _problem(t, exc)}, status=exc.status)
    return _page(
        request,
        rt,
        "account_sign_in.html",
        {"step": "code", "contact": started.contact, "resend_after_s": started.resend_after_s, "problem": None},
    )


@router.post("/sign-in/code", response_class=HTMLResponse)
async def confirm_code(
    request: Request,
    rt: RuntimeDep,
    contact: Annotated[str, Form(max_length=254)],
    code: Annotated[str, Form(max_length=16)],
    form_token: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    t = translator(chosen_language(request)[0])
    context: dict[str, Any] = {"step": "code", "contact": contact, "resend_after_s": 0, "problem": None}
    if not _form_ok(request, form_token):
        return _page(
            request, rt, "account_sign_in.html", {**context, "problem": t("account.error.form_expired")}, status=403
        )
    try:
        issued = await rt.buyers.confirm(rt.db, contact, code)
    except (InvalidContact, CodeWrong, CodeExpired, TooManyAttempts) as exc:
        if isinstance(exc, SIGN_IN_FAILURES):
            await rt.risk.failed(sign_in_context(request, contact=contact))
        step = "code" if isinstance(exc, CodeWrong) else "contact"
        problem = {**context, "step": step, "problem": _problem(t, exc)}
        return _page(request, rt, "account_sign_in.html", problem, status=exc.status)
    response = RedirectResponse("/account/orders", status_code=303)
    set_buyer_cookie(response, request, rt, issued.token)
    return response


@router.post("/sign-out", response_class=RedirectResponse)
async def sign_out(request: Request, form_token: Annotated[str, Form(max_length=64)] = "") -> Response:
    response = RedirectResponse("/" if _form_ok(request, form_token) else "/account/orders", status_code=303)
    if _form_ok(request, form_token):
        clear_buyer_cookie(response, request)
    return response


@router.get("/orders", response_class=HTMLResponse)
async def history(
    request: Request, rt: RuntimeDep, before_id: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None
) -> Response:
    contact = signed_in(request, rt)
    if contact is None:
        return RedirectResponse("/account/sign-in", status_code=303)
    async with rt.db.read() as session:
        page = await orders.history(session, contact, limit=orders.HISTORY_PAGE + 1, before_id=before_id)
        skus = {sku_id: await catalog.get_sku(session, sku_id) for sku_id in {order.sku_id for order in page}}
    shown = page[: orders.HISTORY_PAGE]
    when = local_time(request)
    rows = [
        {
            "number": order.number,
            "item": skus[order.sku_id].name,
            "quantity": order.quantity,
            "total": display(order.total_minor, order.currency),
            "status": order.status,
            "placed": when(order.created_at),
        }
        for order in shown
    ]
    older = shown[-1].id if len(page) > orders.HISTORY_PAGE else None
    return _page(request, rt, "account_orders.html", {"contact": contact, "rows": rows, "older": older})


async def owner_secret(request: Request, rt: Runtime, number: str) -> str | None:
    """The lookup secret of order `number` when the signed-in buyer placed it (its verified contact); else None.

    Lets a signed-in buyer open its orders from the history, or from a notice's link, in any browser.
    """
    contact = signed_in(request, rt)
    if contact is None:
        return None
    try:
        async with rt.db.read() as session:
            order = await orders.by_number(session, number)
    except OrderNotFound:
        return None
    if order.buyer_contact != contact:
        return None
    return rt.order_keys.lookup_secret(number)

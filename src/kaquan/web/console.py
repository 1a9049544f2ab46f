"""The admin console: server-rendered pages under /admin, in Chinese and English.

Each page handler authenticates (`require(Permission.X)`, the same check as the admin
API: a session cookie, and on POST the session's CSRF token in the `csrf_token` field),
calls service functions and renders. Signing in, signing out and the sign-in page are
the only console routes without a permission. A browser without a live session is sent
to the sign-in page; any other refusal is shown as a console page. A client that does
not ask for HTML (a script with a bearer token) gets the usual JSON error instead.
"""

import secrets
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from datetime import date, timedelta
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote, urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from kaquan import identity, ledger
from kaquan.audit import service as audit
from kaquan.catalog import service as catalog
from kaquan.catalog.schemas import ProductCreate, SkuCreate
from kaquan.channels import agents
from kaquan.channels.callbacks import service as callbacks
from kaquan.identity.errors import LoginFailed, TotpRequired
from kaquan.identity.permissions import Permission
from kaquan.inventory import custody, importing
from kaquan.inventory import redemption as redeeming
from kaquan.inventory.errors import ImportRejected
from kaquan.inventory.stock import batches_of_sku, per_sku, stock
from kaquan.kit import clock
from kaquan.kit.bounds import BigRowId, Id, Int32
from kaquan.kit.crypto import same_digest
from kaquan.kit.errors import BadInput, DomainError, RateLimited, Unauthorized
from kaquan.kit.money import Money
from kaquan.orders import service as orders
from kaquan.orders.trace import trace_leaks
from kaquan.web.admin_api import code_source
from kaquan.web.custody_api import MAX_LEAK_FILE_BYTES
from kaquan.web.deps import SESSION_COOKIE, Principal, RuntimeDep, check_csrf, client_ip, require, session_identity
from kaquan.web.i18n import LANG_COOKIE, LANGUAGE_NAMES, LANGUAGES, language, translator
from kaquan.web.identity_api import COOKIE_PATH, set_session_cookie
from kaquan.web.pages import render
from kaquan.web.security import is_tls

LOGIN_PATH = "/admin/login"
HOME = "/admin/"
LOGIN_CSRF_COOKIE = "kq_login"
AUDIT_PAGE = 100
CONSOLE_DEVICE = "console"
Model = TypeVar("Model", bound=BaseModel)


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def safe_next(target: str, default: str = HOME) -> str:
    """Only a path on this site: never `//host` or a scheme, so a link cannot bounce a browser elsewhere."""
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return default


def _here(request: Request) -> str:
    """Where a language switch returns to: this page, or the dashboard after a form post."""
    if request.method != "GET":
        return HOME
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def page(
    request: Request,
    admin: Principal | None,
    name: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    lang = language(request)
    identity_ = admin.identity if admin is not None else None
    full = {
        "t": translator(lang),
        "lang": lang,
        "languages": LANGUAGE_NAMES,
        "admin": admin,
        "can": admin.permissions if admin is not None else frozenset(),
        "P": Permission,
        "csrf": identity_.csrf_token if identity_ is not None and identity_.csrf_token else "",
        "here": _here(request),
        **context,
    }
    return render(
        request,
        f"console/{name}",
        full,
        status=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def error_page(request: Request, status: int, code: str, message: str, details: dict[str, Any]) -> Response:
    headers = {"Retry-After": str(details["retry_after"])} if isinstance(details.get("retry_after"), int) else {}
    context = {"status": status, "code": code, "message": message, "details": details}
    return page(request, None, "error.html", context, status=status, headers=headers)


class ConsoleRoute(APIRoute):
    """Turns refusals into pages for browsers: no session → the sign-in page, anything else → an error page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthorized as exc:
                if not wants_html(request):
                    raise
                if request.method == "GET":
                    return RedirectResponse(f"{LOGIN_PATH}?next={quote(_here(request), safe='')}", status_code=303)
                return error_page(request, exc.status, exc.code, exc.message, exc.details)
            except DomainError as exc:
                if not wants_html(request):
                    raise
                if isinstance(exc, RateLimited):
                    exc.details["retry_after"] = exc.retry_after
                return error_page(request, exc.status, exc.code, exc.message, exc.details)
            except RequestValidationError as exc:
                if not wants_html(request):
                    raise
                message = "; ".join(_problem(err) for err in exc.errors())
                return error_page(request, 422, "validation_error", message, {})

        return guarded


def _problem(err: Any) -> str:
    return f"{'.'.join(str(part) for part in err.get('loc', ()))}: {err.get('msg', '')}"


def _model(cls: type[Model], **data: Any) -> Model:
    """A service input built from form fields; a bad field is a clear 400, like any bad input."""
    try:
        return cls(**data)
    except ValidationError as exc:
        raise BadInput("; ".join(_problem(err) for err in exc.errors())) from None


router = APIRouter(route_class=ConsoleRoute, tags=["console"], default_response_class=HTMLResponse)

AuditRead = Annotated[Principal, require(Permission.AUDIT_READ)]
CatalogRead = Annotated[Principal, require(Permission.CATALOG_READ)]
ChannelsRead = Annotated[Principal, require(Permission.CHANNELS_READ)]
CatalogWrite = Annotated[Principal, require(Permission.CATALOG_WRITE)]
CodesReveal = Annotated[Principal, require(Permission.CODES_REVEAL)]
LeaksTrace = Annotated[Principal, require(Permission.LEAKS_TRACE)]
OrdersRead = Annotated[Principal, require(Permission.ORDERS_READ)]
Redeemer = Annotated[Principal, require(Permission.REDEEM)]
StockRead = Annotated[Principal, require(Permission.STOCK_READ)]
StockWrite = Annotated[Principal, require(Permission.STOCK_WRITE)]


# --- sign-in, sign-out, language ---------------------------------------------------------------------


def _login_page(
    request: Request, *, next_url: str, error: str | None = None, status: int = 200, retry_after: int = 0
) -> Response:
    """The sign-in form with a fresh double-submit token: there is no session yet to hold a CSRF token."""
    token = secrets.token_urlsafe(32)
    context = {"login_csrf": token, "next": safe_next(next_url), "error": error, "retry_after": retry_after}
    response = page(request, None, "login.html", context, status=status)
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        path=LOGIN_PATH,
        httponly=True,
        samesite="strict",
        secure=is_tls(request) or request.app.state.runtime.settings.public_url.startswith("https://"),
    )
    return response


@router.get(LOGIN_PATH)
async def login_page(request: Request, next: str = HOME, signed_out: bool = False) -> Response:
    return _login_page(request, next_url=next, error="login.signed_out" if signed_out else None)


@router.post(LOGIN_PATH)
async def login(
    request: Request,
    rt: RuntimeDep,
    username: Annotated[str, Form(max_length=128)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    totp: Annotated[str, Form(max_length=16)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=2000)] = HOME,
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not csrf_token or not expected or not same_digest(csrf_token.encode(), expected.encode()):
        return _login_page(request, next_url=next, error="login.csrf", status=403)
    try:
        opened = await identity.login(
            rt.db,
            rt.keyring,
            rt.limiter,
            username=username,
            password=password,
            totp=totp.strip() or None,
            ip=client_ip(request),
        )
    except TotpRequired:
        return _login_page(request, next_url=next, error="login.totp_required", status=401)
    except LoginFailed:
        return _login_page(request, next_url=next, error="login.failed", status=401)
    except RateLimited as exc:
        response = _login_page(request, next_url=next, error="login.throttled", status=429, retry_after=exc.retry_after)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(request, response, opened, rt.settings.public_url.startswith("https://"))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=LOGIN_PATH)
    return response


@router.post("/admin/logout")
async def logout(request: Request, rt: RuntimeDep) -> Response:
    current = await session_identity(request, rt)
    if current is not None:
        await check_csrf(request, current)
        async with rt.db.transaction() as session:
            await identity.logout(session, current, ip=client_ip(request))
    response = RedirectResponse(f"{LOGIN_PATH}?signed_out=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


@router.get("/lang/{code}")
async def switch_language(code: str, next: str = HOME) -> Response:
    """A link, not a form: it only sets a display preference, so a forged click changes nothing of value."""
    response = RedirectResponse(safe_next(next), status_code=303)
    if code in LANGUAGES:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 24 * 3600, path="/", samesite="lax")
    return response


# --- dashboard ------------------------------------------------------------------------------------


@router.get(HOME)
async def dashboard(request: Request, rt: RuntimeDep, admin: StockRead) -> Response:
    start = clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
    async with rt.db.read() as session:
        skus = {sku.id: sku for sku in await catalog.list_skus(session)}
        levels = per_sku(await stock(session))
        sales = await orders.delivered_between(session, start, start + timedelta(days=1))
    context = {"skus": skus, "levels": levels, "sales": sales, "day": start.date().isoformat()}
    return page(request, admin, "dashboard.html", context)


# --- catalog ---------------------------------------------------------------------------------------


@router.get("/admin/products")
async def products(request: Request, rt: RuntimeDep, admin: CatalogRead) -> Response:
    async with rt.db.read() as session:
        found = await catalog.list_products(session)
        skus = await catalog.list_skus(session)
    return page(request, admin, "products.html", {"products": found, "skus": skus})


@router.post("/admin/products")
async def create_product(
    rt: RuntimeDep,
    admin: CatalogWrite,
    name: Annotated[str, Form(max_length=200)],
    kind: Annotated[str, Form(max_length=32)],
    description: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    data = _model(ProductCreate, name=name, kind=kind, description=description)
    async with rt.db.transaction() as session:
        await catalog.create_product(session, data, actor=admin.actor)
    return RedirectResponse("/admin/products", status_code=303)


@router.post("/admin/skus")
async def create_sku(
    rt: RuntimeDep,
    admin: CatalogWrite,
    product_id: Annotated[Id, Form()],
    code: Annotated[str, Form(max_length=64)],
    name: Annotated[str, Form(max_length=200)],
    face_value_minor: Annotated[Int32, Form()],
    price_minor: Annotated[Int32, Form()],
    currency: Annotated[str, Form(max_length=3)] = "CNY",
    cost_minor: Annotated[Int32, Form()] = 0,
    stock_kind: Annotated[str, Form(max_length=16)] = "codes",
    max_per_order: Annotated[Int32, Form()] = 10,
) -> Response:
    data = _model(
        SkuCreate,
        product_id=product_id,
        code=code,
        name=name,
        currency=currency,
        face_value_minor=face_value_minor,
        price_minor=price_minor,
        cost_minor=cost_minor,
        stock_kind=stock_kind,
        max_per_order=max_per_order,
    )
    async with rt.db.transaction() as session:
        await catalog.create_sku(session, data, actor=admin.actor)
    return RedirectResponse("/admin/products", status_code=303)


# --- batches and stock ---------------------------------------------------------------------------


async def _batches_page(
    request: Request, rt: RuntimeDep, admin: Principal, sku_ref: str, *, outcome: dict[str, Any], status: int = 200
) -> Response:
    async with rt.db.read() as session:
        sku = await catalog.get_sku(session, sku_ref)
        levels = await stock(session, sku_id=sku.id)
        batches = await batches_of_sku(session, sku.id)
    context = {"sku": sku, "levels": levels, "batches": batches, **outcome}
    return page(request, admin, "batches.html", context, status=status)


@router.get("/admin/skus/{sku}/batches")
async def batches(request: Request, rt: RuntimeDep, admin: StockRead, sku: str) -> Response:
    return await _batches_page(request, rt, admin, sku, outcome={})


@router.post("/admin/skus/{sku}/batches")
async def import_batch(
    request: Request,
    rt: RuntimeDep,
    admin: StockWrite,
    sku: str,
    file: Annotated[UploadFile, File()],
    supplier: Annotated[str, Form(max_length=200)] = "",
    unit_cost_minor: Annotated[Int32, Form(ge=0)] = 0,
    expires_on: Annotated[str, Form(max_length=10)] = "",
    warehouse: Annotated[str, Form(max_length=32)] = "main",
    layout: Annotated[Literal["auto", "single", "pair", "csv"], Form()] = "auto",
    skip_invalid: Annotated[bool, Form()] = False,
) -> Response:
    source = code_source(file)
    try:
        expiry = date.fromisoformat(expires_on) if expires_on else None
    except ValueError:
        raise BadInput("the expiry date is YYYY-MM-DD", field="expires_on") from None
    meta = importing.BatchMeta(
        supplier=supplier,
        unit_cost_minor=unit_cost_minor,
        expires_on=expiry,
        warehouse=warehouse or "main",
        source=file.filename or "",
    )
    try:
        async with rt.db.transaction() as session:
            target = await catalog.get_sku(session, sku)
            result = await importing.import_file(
                rt.db,
                session,
                rt.vault,
                target,
                source,
                meta,
                actor=admin.actor,
                layout=layout,
                skip_invalid=skip_invalid,
            )
    except ImportRejected as rejected:
        outcome = {
            "rejected": rejected.details.get("problems", []),
            "rejected_total": rejected.details.get("problem_count"),
        }
        return await _batches_page(request, rt, admin, sku, outcome=outcome, status=400)
    return await _batches_page(request, rt, admin, sku, outcome={"imported": asdict(result)})


# --- orders ----------------------------------------------------------------------------------------


@router.get("/admin/orders")
async def order_search(
    request: Request, rt: RuntimeDep, admin: OrdersRead, q: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    async with rt.db.read() as session:
        found = await orders.search(session, q)
        skus = {sku.id: sku for sku in await catalog.list_skus(session)} if found else {}
    return page(request, admin, "orders.html", {"q": q, "orders": found, "skus": skus})


async def _order_page(
    request: Request, rt: RuntimeDep, admin: Principal, number: str, revealed: custody.Revealed | None = None
) -> Response:
    async with rt.db.read() as session:
        order = await orders.by_number(session, number)
        sku = await catalog.get_sku(session, order.sku_id)
        codes = await custody.masked_codes(session, rt.vault, order.id)
        events = await orders.events_of(session, order.id)
    context = {"order": order, "sku": sku, "codes": codes, "events": events, "revealed": revealed}
    return page(request, admin, "order.html", context)


@router.get("/admin/orders/{number}")
async def order_detail(request: Request, rt: RuntimeDep, admin: OrdersRead, number: str) -> Response:
    return await _order_page(request, rt, admin, number)


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


# --- audit trail ------------------------------------------------------------------------------------


@router.get("/admin/audit")
async def audit_trail(
    request: Request,
    rt: RuntimeDep,
    admin: AuditRead,
    actor: Annotated[str, Query(max_length=128)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    target: Annotated[str, Query(max_length=128)] = "",
    before_id: BigRowId | None = None,
) -> Response:
    filters = {"actor": actor.strip(), "action": action.strip(), "target": target.strip()}
    where = audit.AuditFilter(
        actor=filters["actor"] or None, action=filters["action"] or None, target=filters["target"] or None
    )
    async with rt.db.read() as session:
        rows = await audit.search(session, where, before_id=before_id, limit=AUDIT_PAGE)
    chosen = {name: value for name, value in filters.items() if value}
    next_page = urlencode({**chosen, "before_id": rows[-1].id}) if len(rows) == AUDIT_PAGE else None
    context = {"entries": rows, "filters": filters, "csv_query": urlencode(chosen), "next_page": next_page}
    return page(request, admin, "audit.html", context)


# --- leaks ---------------------------------------------------------------------------------------------


@router.get("/admin/leaks")
async def leaks_form(request: Request, admin: LeaksTrace) -> Response:
    return page(request, admin, "leaks.html", {"report": None})


@router.post("/admin/leaks")
async def trace_leaked_codes(
    request: Request,
    rt: RuntimeDep,
    admin: LeaksTrace,
    file: Annotated[UploadFile, File()],
    layout: Annotated[Literal["auto", "single", "pair", "csv"], Form()] = "auto",
) -> Response:
    data = await file.read(MAX_LEAK_FILE_BYTES + 1)
    if len(data) > MAX_LEAK_FILE_BYTES:
        raise BadInput(f"the file is larger than {MAX_LEAK_FILE_BYTES // 2**20} MiB; split it")
    async with rt.db.read() as session:
        report = await trace_leaks(rt.db, session, rt.vault, data, layout=layout)
    return page(request, admin, "leaks.html", {"report": report})


@router.post("/admin/batches/{batch_id}/quarantine")
async def quarantine_batch(
    request: Request,
    rt: RuntimeDep,
    admin: StockWrite,
    batch_id: Id,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    async with rt.db.transaction() as session:
        done = await custody.quarantine(rt.db, session, batch_id, actor=admin.actor, reason=reason, ip=admin.ip)
    return page(request, admin, "leaks.html", {"report": None, "quarantined": done})


# --- redemption ----------------------------------------------------------------------------------------


def _redeem_form(request: Request, admin: Principal, **outcome: Any) -> Response:
    return page(request, admin, "redeem.html", {"nonce": uuid.uuid4().hex, **outcome})


@router.get("/admin/redeem")
async def redeem_form(request: Request, admin: Redeemer) -> Response:
    return _redeem_form(request, admin)


@router.post("/admin/redeem")
async def redeem(
    request: Request,
    rt: RuntimeDep,
    admin: Redeemer,
    code: Annotated[str, Form(max_length=256)],
    action: Annotated[Literal["verify", "redeem"], Form()] = "verify",
    location: Annotated[str, Form(max_length=200)] = "console",
    nonce: Annotated[str, Form(min_length=8, max_length=64)] = "",
) -> Response:
    """A code travels only in a POST body: in a URL it would reach access logs and browser history."""
    lockout = redeeming.Lockout(rt.limiter)
    device = f"{CONSOLE_DEVICE}:{admin.user.user_id}"
    if action == "redeem":
        request_ = redeeming.RedeemRequest(
            code=code, nonce=nonce or uuid.uuid4().hex, device_id=device, location=location.strip() or "console"
        )
        done = await redeeming.attempt_redemption(
            rt.db, rt.vault, lockout, request_, actor=admin.actor, account=admin.account, ip=admin.ip
        )
        return _redeem_form(request, admin, redeemed=done)
    found = await redeeming.attempt_verification(
        rt.db, rt.vault, lockout, code, account=admin.account, ip=admin.ip, device_id=device
    )
    return _redeem_form(request, admin, state=found)


# --- agents --------------------------------------------------------------------------------------


@router.get("/admin/agents")
async def agents_page(request: Request, rt: RuntimeDep, admin: ChannelsRead) -> Response:
    """Agents with their prepaid balances, credit limits, live keys and callback URLs."""
    rows = []
    async with rt.db.read() as session:
        for agent in await agents.list_agents(session):
            held = await ledger.balance(session, agent.account_id)
            endpoint = await callbacks.get_endpoint(session, agent.id)
            rows.append(
                {
                    "agent": agent,
                    "balance": Money(held.balance_minor, held.currency).format(),
                    "credit_limit": Money(agent.credit_limit_minor, agent.currency).format(),
                    "available": Money(held.balance_minor + agent.credit_limit_minor, agent.currency).format(),
                    "live_keys": sum(1 for key in await agents.keys_of(session, agent.id) if key.revoked_at is None),
                    "callback": callbacks.redacted(endpoint.url) if endpoint else None,
                }
            )
    return page(request, admin, "agents.html", {"rows": rows})
